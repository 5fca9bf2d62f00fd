"""CPU accounting for the fan-out benches: cores per service over a window (/proc), machine
busy per second, and py-spy profiles of services."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bench_host import SamplerThread
from fanout_stack import Service, clock, spawn
from proc_cpu import CLK_TCK, Window, cpu_snapshot, descendants, tick_deltas
from pyspy_stacks import summarize_profile

# --------------------------------------------------------------------------------------------
# CPU accounting per service (snapshots from bench/proc_cpu.py's Window)


PG_OTHERS = "postgres (other sessions)"


def cpu_by_service(
    window: Window, services: list[Service], pg_backends: Collection[int] | None = None
) -> dict[str, Any] | None:
    """Cores per service and server over the window. With `pg_backends`, only those PostgreSQL
    processes count as "postgres"; the rest of the server (other sessions' backends, WAL writer,
    checkpointer, ...) is PG_OTHERS."""
    start, end = window.snapshot("start"), window.snapshot("end")
    if start is None or end is None:
        return None
    samplers = {child.pid for child in window.children.values()}
    owner: dict[int, str] = {}
    for service in services:
        for pid in descendants(end.procs, service.process.pid):
            owner[pid] = service.name
    me = os.getpid()
    groups: Counter[str] = Counter()
    for pid, comm, delta in tick_deltas(start, end, samplers):
        if pid == me:
            group = "bench client"
        elif pid in owner:
            group = owner[pid]
        elif comm == "py-spy":
            group = "py-spy"
        elif comm.startswith(("postgres", "postmaster")):
            group = "postgres" if pg_backends is None or pid in pg_backends else PG_OTHERS
        elif comm.startswith("nats-server"):
            group = "nats-server"
        elif comm.startswith("redis-server"):
            group = "redis-server"
        else:
            group = "other"
        groups[group] += delta
    wall = end.at - start.at
    total = end.total - start.total
    cores = {k: round(v / CLK_TCK / wall, 3) for k, v in groups.most_common()}
    busy_cores = (end.busy - start.busy) / CLK_TCK / wall
    # CPU of processes that exited during the window (e.g. other sessions' short-lived tests)
    cores["exited processes"] = round(max(0.0, busy_cores - sum(cores.values())), 3)
    return {
        "wall_s": round(wall, 3),
        "machine_busy_pct": round(100 * (end.busy - start.busy) / total, 1) if total else None,
        "cores": cores,
    }


class BusySampler(SamplerThread):
    """Every second: machine-wide busy cores (/proc/stat) and the cores of the stack's own
    processes, so lag spikes can be set against other sessions' load on the shared machine."""

    def __init__(self, services: list[Service], interval: float = 1.0) -> None:
        super().__init__("busy-sampler")
        self.services = services
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (perf time, busy cores, stack)

    def _pids(self) -> list[int]:
        procs = cpu_snapshot().procs
        found: list[int] = []
        for service in self.services:
            found.extend(descendants(procs, service.process.pid))
        return found

    @staticmethod
    def _read(pids: list[int]) -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]
        stack = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            rest = raw[raw.rindex(")") + 2 :].split()
            stack += int(rest[11]) + int(rest[12])
        return busy, stack

    def _run(self) -> None:
        pids = self._pids()
        at, (busy, stack) = clock(), self._read(pids)
        while not self._stop.wait(self.interval):
            now, (busy2, stack2) = clock(), self._read(pids)
            wall = now - at
            self.samples.append(
                (now, (busy2 - busy) / CLK_TCK / wall, (stack2 - stack) / CLK_TCK / wall)
            )
            at, busy, stack = now, busy2, stack2

    def per_bucket(self, origin: float, width: float) -> dict[int, tuple[float, float]]:
        """Mean (machine busy cores, stack cores) per bucket of `width` seconds."""
        buckets: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for at, busy, stack in self.samples:
            buckets[int((at - origin) // width)].append((busy, stack))
        return {
            k: (
                round(sum(b for b, _ in v) / len(v), 2),
                round(sum(s for _, s in v) / len(v), 2),
            )
            for k, v in buckets.items()
        }


# --------------------------------------------------------------------------------------------
# profiling


class Spy:
    """`py-spy record` on one process for a fixed duration (raw collapsed stacks)."""

    RATE = 100

    def __init__(self, service: Service, out: Path, seconds: float) -> None:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            sys.exit("fanout_lag: --profile needs py-spy in the virtualenv")
        self.path = out / f"{service.name}.pyspy.txt"
        self.seconds = seconds
        with open(out / f"{service.name}.pyspy.log", "wb") as log_file:
            self.process = subprocess.Popen(
                [
                    *(py_spy, "record", "--pid", str(service.process.pid), "--gil"),
                    *("--nonblocking", "--rate", str(self.RATE), "--format", "raw"),
                    *("--duration", str(max(1, round(seconds))), "--output", str(self.path)),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def finish(self) -> dict[str, Any] | None:
        try:
            self.process.wait(self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        profile = summarize_profile(self.path, self.RATE, self.seconds, top=25)
        if profile is not None:
            profile.pop("areas", None)  # write-API specific
        return profile


BURNER = "cpu burner"
BURN = "while True:\n    pass\n"


def start_burner(log_dir: Path) -> Service:
    """A busy loop in a process of its own: one core taken from the stack while it runs."""
    return spawn(BURNER, [sys.executable, "-I", "-S", "-c", BURN], {}, 0, log_dir)
