"""`--profile` of bench/write_throughput.py: py-spy attached to the write API for the measured
window, and what the users store's connections do inside transactions meanwhile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from bench_host import SamplerThread
from write_server import USERS_DB


class ActivitySampler(SamplerThread):
    """Samples pg_stat_activity of the users store every 50 ms during the measured window.

    Appends take a lock on the events table, so the store commits one transaction at a time;
    the share of samples in which a server connection is inside a transaction, and what it is
    waiting for there, tell whether that serial section (and what stretches it) bounds the rate.
    """

    QUERY = """
        SELECT state, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-')
        FROM pg_stat_activity
        WHERE datname = %s AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
    """

    def __init__(self, base: str) -> None:
        super().__init__("pg-activity")
        self.url = f"{base}/{USERS_DB}"
        self.samples = 0
        self.busy = 0  # samples with at least one connection inside a transaction
        self.in_tx = 0  # sum over samples of connections inside a transaction
        self.states: Counter[str] = Counter()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                rows = conn.execute(self.QUERY, (USERS_DB,)).fetchall()
                self.samples += 1
                self.busy += bool(rows)
                self.in_tx += len(rows)
                for state, kind, event in rows:
                    self.states[f"{state} / {kind}:{event}"] += 1

    def report(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        return {
            "samples": self.samples,
            "in_transaction_pct": round(100 * self.busy / self.samples, 1),
            "mean_connections_in_transaction": round(self.in_tx / self.samples, 2),
            "what_they_wait_for_pct": {
                k: round(100 * v / self.samples, 1) for k, v in self.states.most_common(8)
            },
        }


class Profiler:
    """`py-spy record` attached to the server (and its worker processes) for the measured window.

    Only threads holding the GIL are sampled (`--gil`), so the samples are where the server's
    Python CPU time goes; `--nonblocking` never pauses the server.
    """

    RATE = 200

    def __init__(self, base: str, out: Path, seconds: float) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            sys.exit("write_throughput: --profile needs py-spy: .venv/bin/pip install py-spy")
        self.py_spy = py_spy
        self.path = out / "write-api.pyspy.txt"
        self.log_path = out / "py-spy.log"
        self.seconds = seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.activity = ActivitySampler(base)

    def start(self, pid: int) -> None:
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [
                    self.py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--gil",
                    "--nonblocking",
                    "--rate",
                    str(self.RATE),
                    "--format",
                    "raw",
                    "--duration",
                    str(max(1, round(self.seconds))),
                    "--output",
                    str(self.path),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
