"""Write throughput: the write API end to end against raw PostgreSQL commits, in one run.

(a) raw: psycopg 3, N threads (default 8) each with its own connection, autocommit off, one
    INSERT + COMMIT per event into a plain events-like table in the scratch database
    `strata_bench_raw` (created if missing, truncated first).
(b) api: the write API in stack mode as a real subprocess (`strata-write-api`) on fresh databases
    `strata_bench_<context>` (plus `STRATA_BENCH_DB_SUFFIX`, for runs that share a PostgreSQL),
    one per registered context (dropped and created), driven by M
    keep-alive HTTP/1.1 connections (default 32) from a cheap asyncio client (bench/loadgen.py).
    Every request is one command that appends one event: `POST /users` with a unique email
    (`--command register`), or `PUT /users/{id}/name` on one pre-registered user per client
    (`--command rename`).

(c) with `--overload`: the same server, driven open-loop (arrivals at a fixed rate, each on an
    idle connection or a new one, whatever the answers) at twice the rate (b) measured, for as
    long as (b): goodput, p50/p99 of the admitted commands (target p99 <= 50 ms), and the
    commands refused with 503 (admission control) with their latency (target <= 5 ms). Both are
    measured from each arrival's due time, so the client's own lag is in them: it is printed
    (arrival to request written, on a kept connection and on a new one), and the client is
    scheduled first (nice -10, when permitted) with its startup objects frozen out of the
    garbage collector (a full collection over them stalled it ~100-140 ms).

Prints both rates, the ratio b/a (target >= 0.5), the latencies, the keep-alive connections each
server process holds, and the CPU each party used during each measured window. `--profile`
attaches `py-spy record` to the server for the measured window and prints where its time goes.
Exits 0 whether or not the target is met; exits 2 if more than 1 % of the API requests failed
(the figures would be meaningless) or the server did not start.

    .venv/bin/python bench/write_throughput.py                  # 10 s each, 2 workers, register
    .venv/bin/python bench/write_throughput.py --workers 1 --command rename --json
    .venv/bin/python bench/write_throughput.py --profile        # needs `pip install py-spy`
    .venv/bin/python bench/write_throughput.py --overload       # then (c) at twice (b)'s rate
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
import loadgen
from bench_auth import authorization, client_tokens, setup_token, trusted_identity, unthrottled

from contexts.registered import REGISTRY

HOST = "127.0.0.1"
STARTED = time.time()
TARGET_RATIO = 0.5
MAX_ERROR_RATIO = 0.01
# Another run of this bench on the same PostgreSQL drops these databases under this one's feet:
# concurrent runs (several engineers on one host) each set their own suffix.
DB_SUFFIX = os.environ.get("STRATA_BENCH_DB_SUFFIX", "")
RAW_DB = f"strata_bench_raw{DB_SUFFIX}"
STORE_DBS = {
    context.database_url_variable: f"strata_bench_{context.name}{DB_SUFFIX}" for context in REGISTRY
}
USERS_DB = STORE_DBS[REGISTRY["users"].database_url_variable]

RAW_TABLE = """
CREATE TABLE IF NOT EXISTS bench_events (
    id bigserial PRIMARY KEY,
    stream_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
)"""
RAW_INSERT = "INSERT INTO bench_events (stream_id, version, type, data) VALUES (%s, %s, %s, %s)"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc: who burnt the cores during a measured window


CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    at: float
    busy: int  # machine-wide busy jiffies
    total: int  # machine-wide jiffies
    procs: dict[int, tuple[str, int, int]]  # pid -> (comm, ppid, utime+stime jiffies)


def _scan_proc() -> dict[str, Any]:
    """/proc/stat and every process's CPU ticks. Self-contained: also run in a child process."""
    import os  # noqa: PLC0415 - the child process runs this function's source alone
    import time  # noqa: PLC0415

    started = time.perf_counter()
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        procs[entry.name] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
    at = (started + time.perf_counter()) / 2  # CLOCK_MONOTONIC: comparable across processes
    return {"at": at, "busy": total - idle, "total": total, "procs": procs}


def _snapshot(data: dict[str, Any]) -> CpuSnapshot:
    procs = {int(pid): (c, int(pp), int(t)) for pid, (c, pp, t) in data["procs"].items()}
    return CpuSnapshot(data["at"], data["busy"], data["total"], procs)


def cpu_snapshot() -> CpuSnapshot:
    return _snapshot(_scan_proc())


SCAN_CHILD = (
    "from typing import Any\n"
    + inspect.getsource(_scan_proc)
    + "import json\nprint(json.dumps(_scan_proc()))\n"
)


def _descendants(procs: dict[int, tuple[str, int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (_, ppid, _) in procs.items():
        children[ppid].append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_usage(
    start: CpuSnapshot, end: CpuSnapshot, server_root: int | None, exclude: set[int] = frozenset()
) -> dict[str, Any]:
    """Cores used by each party between two snapshots (1.0 = one core busy all the time)."""
    wall = end.at - start.at
    server = _descendants(end.procs, server_root) if server_root else set()
    me = os.getpid()
    groups: Counter[str] = Counter()
    for pid, (comm, _, ticks) in end.procs.items():
        before = start.procs.get(pid)
        delta = ticks - (before[2] if before and before[0] == comm else 0)
        if delta <= 0 or pid in exclude:
            continue
        if pid == me:
            group = "client (bench process)"
        elif comm == "py-spy":
            group = "py-spy"
        elif pid in server:
            group = "write API"
        elif comm.startswith("postgres") or comm.startswith("postmaster"):
            group = "postgres"
        else:
            group = "other"
        groups[group] += delta
    machine_total = end.total - start.total
    return {
        "wall_s": round(wall, 3),
        "machine_busy_pct": round(100 * (end.busy - start.busy) / machine_total, 1)
        if machine_total
        else None,
        "cores": {k: round(v / CLK_TCK / wall, 2) for k, v in sorted(groups.items())},
        "cpu_s": {k: round(v / CLK_TCK, 2) for k, v in sorted(groups.items())},
    }


def connections_per_process(root: int, port: int) -> dict[str, int]:
    """Established TCP connections on `port` held by each process of the tree under `root`
    (uvicorn workers share one listening socket; the kernel decides who accepts what)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local_port = int(parts[1].rsplit(":", 1)[1], 16)
                if local_port == port and parts[3] == "01":  # 01 = ESTABLISHED
                    inodes.add(parts[9])
    counts: dict[str, int] = {}
    for pid in sorted(_descendants(cpu_snapshot().procs, root)):
        n = 0
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(fd.path)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        n += 1
        if n:
            counts[str(pid)] = n
    return counts


class Window:
    """CPU snapshots at the edges of a measured window.

    Each snapshot is taken by a short-lived child process, started without waiting for it: the
    bench process may be full of busy threads (part a), where reading ~150 /proc files under a
    contended GIL takes seconds and would smear the snapshot across the window.
    """

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[str]] = {}
        self.snaps: dict[str, CpuSnapshot | None] = {}

    def __call__(self, edge: str) -> None:
        self.children[edge] = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SCAN_CHILD], stdout=subprocess.PIPE, text=True
        )

    def snapshot(self, edge: str) -> CpuSnapshot | None:
        """Wait for the snapshot of an edge (taken once)."""
        if edge not in self.snaps:
            child = self.children.get(edge)
            if child is None:
                return None
            out, _ = child.communicate(timeout=30)
            self.snaps[edge] = _snapshot(json.loads(out)) if child.returncode == 0 else None
        return self.snaps[edge]

    def usage(self, server_root: int | None = None) -> dict[str, Any] | None:
        start, end = self.snapshot("start"), self.snapshot("end")
        if start is None or end is None:
            return None
        samplers = {child.pid for child in self.children.values()}
        return cpu_usage(start, end, server_root, samplers)


# --------------------------------------------------------------------------------------------
# databases


def admin_url(base: str) -> str:
    return f"{base}/postgres"


def recreate_database(base: str, name: str) -> None:
    with psycopg.connect(admin_url(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_database(base: str, name: str) -> None:
    with psycopg.connect(admin_url(base), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


# --------------------------------------------------------------------------------------------
# (a) raw PostgreSQL: one INSERT + COMMIT per event


def event_payload() -> str:
    """A JSON document of ~260 bytes, shaped like a registration event."""
    doc = {
        "name": "Ada Lovelace",
        "email": "ada.lovelace@analytical-engine.example.com",
        "originator_topic": "domain.users.profile:UserProfile",
        "timestamp": "2025-01-01T12:00:00.000000+00:00",
        "metadata": {"correlation_id": str(uuid.UUID(int=1)), "causation": None},
    }
    return json.dumps(doc, separators=(",", ":"))


@dataclass
class RawResult:
    clients: int
    seconds: float
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def raw_postgres(
    base: str, *, clients: int, seconds: float, warmup: float, window: Window
) -> RawResult:
    ensure_database(base, RAW_DB)
    url = f"{base}/{RAW_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        conn.execute("TRUNCATE bench_events RESTART IDENTITY")
    data = event_payload()
    result = RawResult(clients=clients, seconds=seconds)
    clock = time.perf_counter
    edges: dict[str, float] = {}
    lock = threading.Lock()

    def set_edges() -> None:  # runs once every connection is open, before anyone starts
        now = clock()
        edges["from"], edges["stop"] = now + warmup, now + warmup + seconds

    ready = threading.Barrier(clients + 1, action=set_edges)
    finished_all = threading.Event()

    def writer() -> None:
        latencies: list[float] = []
        events = 0
        errors: Counter[str] = Counter()
        try:
            conn = psycopg.connect(url, autocommit=False)
        except psycopg.Error:
            ready.abort()  # the main thread then fails instead of waiting forever
            raise
        with conn:
            ready.wait(60)
            measure_from, stop_at = edges["from"], edges["stop"]
            while True:
                started = clock()
                if started >= stop_at:
                    break
                try:
                    conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "UserProfile.Registered", data))
                    conn.commit()
                except psycopg.Error as error:
                    conn.rollback()
                    if started >= measure_from:
                        errors[type(error).__name__] += 1
                    continue
                finished = clock()
                if started >= measure_from and finished <= stop_at:
                    events += 1
                    latencies.append(finished - started)
            finished_all.wait(60)  # keep the backend alive until the CPU snapshot has it
        with lock:
            result.events += events
            result.latencies.extend(latencies)
            result.errors.update(errors)

    threads = [threading.Thread(target=writer, name=f"raw-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(60)
    except threading.BrokenBarrierError:
        raise RuntimeError("raw PostgreSQL clients could not connect") from None
    time.sleep(max(0.0, edges["from"] - clock()))
    window("start")
    time.sleep(max(0.0, edges["stop"] - clock()))
    window("end")
    window.snapshot("end")
    finished_all.set()
    for thread in threads:
        thread.join()
    return result


# --------------------------------------------------------------------------------------------
# (b) the write API as a subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def venv_script(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"write_throughput: cannot find {name!r} next to {sys.executable} or on PATH")
    return found


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    overload_requests: loadgen.RequestFactory | None = None
    """The requests of the open-loop part (c), once the server is ready."""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_server(
    base: str, workers: int, log_dir: Path, jwks_url: str, *, noop: bool = False
) -> Server:
    port = free_port()
    env = dict(os.environ)
    env.update(
        **{variable: f"{base}/{database}" for variable, database in STORE_DBS.items()},
        STRATA_JWKS_URL=jwks_url,
        STRATA_HOST=HOST,
        STRATA_PORT=str(port),
        STRATA_WEB_WORKERS=str(workers),
        STRATA_LOG_LEVEL=env.get("STRATA_LOG_LEVEL", "warning"),
        **unthrottled(env),
    )
    command = [venv_script("strata-write-api")]
    if noop:  # the same framework stack answering without a store
        command = [
            *(sys.executable, "-m", "uvicorn", "framework_ceiling:create_app", "--factory"),
            *("--app-dir", str(Path(__file__).parent), "--host", HOST, "--port", str(port)),
            *("--workers", str(workers), "--log-level", "warning", "--no-access-log"),
        ]
    log_path = log_dir / "write-api.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # new session: we signal exactly this group at the end
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(process, port, log_path)


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    request = loadgen.request_bytes("GET", "/readyz", f"{HOST}:{server.port}")
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the write API exited with {server.process.returncode}")
        try:
            response = loadgen.run(lambda: loadgen.fetch(HOST, server.port, request))
        except (OSError, TimeoutError, EOFError):
            response = None
        # several answers in a row, so that every worker process is likely up
        streak = streak + 1 if response is not None and response.status == 200 else 0
        if streak >= 5:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the write API was not ready within {timeout:g} s")


def stop_process_group(process: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    """SIGINT to the process's own group (like Ctrl-C), SIGKILL to it if it lingers; then make
    sure no member of the group (e.g. a uvicorn worker) is left behind."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def stop_server(server: Server, timeout: float = 30.0) -> None:
    stop_process_group(server.process, "write API", timeout)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every fan-out bench shares: servers, isolation, output."""
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the strata processes (repeatable), e.g. STRATA_..._SIZE=..",
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and streams")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and profiles")
    parser.add_argument("--json", action="store_true", help="print one JSON document only")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON report here")


class ActivitySampler:
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
        self.url = f"{base}/{USERS_DB}"
        self.samples = 0
        self.busy = 0  # samples with at least one connection inside a transaction
        self.in_tx = 0  # sum over samples of connections inside a transaction
        self.states: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-activity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

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


def register_factory(host_header: str, run_id: str, tokens: list[str]) -> loadgen.RequestFactory:
    prefixes = [
        (
            f"POST /users HTTP/1.1\r\nHost: {host_header}\r\n{authorization(token)}"
            "Content-Type: application/json\r\n"
        ).encode()
        for token in tokens
    ]

    def make(client: int, seq: int) -> bytes:
        body = b'{"name":"Bench User","email":"u%d-%d-%s@bench.example.com"}' % (
            client,
            seq,
            run_id.encode(),
        )
        prefix = prefixes[client % len(prefixes)]
        return prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return make


def rename_factory(
    host_header: str, user_ids: list[str], tokens: list[str]
) -> loadgen.RequestFactory:
    prefixes = [
        (
            f"PUT /users/{user_id}/name HTTP/1.1\r\nHost: {host_header}\r\n"
            f"{authorization(token)}Content-Type: application/json\r\n"
        ).encode()
        for user_id, token in zip(user_ids, tokens, strict=True)
    ]

    def make(client: int, seq: int) -> bytes:
        body = b'{"name":"Bench User %d"}' % seq  # a new name each time: one event each
        return prefixes[client % len(prefixes)] + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return make


def healthz_factory(host_header: str) -> loadgen.RequestFactory:
    """The framework ceiling: the same server answering GET /healthz, which touches no store."""
    request = loadgen.request_bytes("GET", "/healthz", host_header)

    def make(client: int, seq: int) -> bytes:
        return request

    return make


def preregister(port: int, count: int, run_id: str) -> list[str]:
    host_header = f"{HOST}:{port}"
    operator = authorization(setup_token())

    async def go() -> list[str]:
        ids = []
        for i in range(count):
            request = loadgen.json_request(
                "POST",
                "/users",
                host_header,
                {"name": f"Renamed {i}", "email": f"r{i}-{run_id}@bench.example.com"},
                extra=operator,
            )
            response = await loadgen.fetch(HOST, port, request)
            if response.status != 201:
                raise RuntimeError(f"pre-registration failed: {response.status} {response.body!r}")
            ids.append(json.loads(response.body)["id"])
        return ids

    return loadgen.run(go)  # type: ignore[return-value]


def commit_batches(base: str) -> dict[str, Any]:
    """Events and the transactions that wrote them in the users store, over the whole run."""
    with psycopg.connect(f"{base}/{USERS_DB}", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM users_events"
        ).fetchone()
    events, transactions = row if row else (0, 0)
    return {
        "events": events,
        "transactions": transactions,
        "events_per_transaction": round(events / transactions, 2) if transactions else None,
    }


def api_end_to_end(
    base: str,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    workers: int,
    command: str,
    profiler: Profiler | None,
    log_dir: Path,
    window: Window,
    jwks_url: str,
) -> tuple[loadgen.LoadResult, Server]:
    for database in STORE_DBS.values():
        recreate_database(base, database)
    server = start_server(base, workers, log_dir, jwks_url, noop=command == "noop")
    try:
        wait_ready(server)
        run_id = uuid.uuid4().hex[:8]
        host_header = f"{HOST}:{server.port}"
        tokens = client_tokens(clients)
        if command == "rename":
            user_ids = preregister(server.port, clients, run_id)
            factory = rename_factory(host_header, user_ids, tokens)
            server.overload_requests = factory
        elif command == "healthz":
            factory = healthz_factory(host_header)
            server.overload_requests = factory
        else:  # register, and noop: the same request to the storeless framework ceiling
            factory = register_factory(host_header, run_id, tokens)
            # other emails than the closed loop's: request n is (client n, sequence n)
            server.overload_requests = register_factory(host_header, f"o{run_id}", tokens)
        spread: dict[str, int] = {}

        def on_window(edge: str) -> None:
            window(edge)
            if edge == "start":
                spread.update(connections_per_process(server.process.pid, server.port))
            if profiler is None:
                return
            if edge == "start":
                profiler.start(server.process.pid)
                profiler.activity.start()
            else:
                profiler.activity.stop()

        result = loadgen.run_load(
            HOST,
            server.port,
            factory,
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            on_window=on_window,
        )
        result.connections_per_process = spread  # type: ignore[attr-defined]
        if profiler is not None:
            profiler.wait()
    except BaseException:
        log("--- write API log (tail) ---\n" + server.log_tail())
        stop_server(server)
        raise
    return result, server


OVERLOAD_FACTOR = 2.0
OVERLOAD_P99_TARGET_MS = 50.0
REFUSAL_TARGET_MS = 5.0
CLIENT_NICENESS = -10


def raise_priority() -> int | None:
    """Schedule this process (the open-loop client) before the server on a busy host, when
    allowed: a client waiting for a core sends late, and the lag would count as the server's
    latency. The client needs ~0.1 core. Returns the niceness to restore."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICENESS)
    except PermissionError:
        return None
    return before


def overloaded(server: Server, rate: float, seconds: float) -> dict[str, Any]:
    """(c) Open-loop arrivals at `rate` (twice the capacity (b) measured): what the admitted
    commands got, and how fast the refused ones were told."""
    assert server.overload_requests is not None
    log(f"(c) open loop at {rate:,.0f} req/s for {seconds:g} s ...")
    raised = raise_priority()
    gc.freeze()  # a full collection over everything (a) and (b) left would stall the client
    window = Window()
    window("start")
    result = loadgen.run_open_loop(
        HOST, server.port, server.overload_requests, rate=rate, seconds=seconds
    )
    window("end")
    gc.unfreeze()
    if raised is not None:
        os.setpriority(os.PRIO_PROCESS, 0, raised)
    ok, refused = result.ok_latencies, result.refused_latencies
    lags, connecting = result.send_lags, result.new_connection_lags
    return {
        "offered_rate": round(rate, 1),
        "sent": result.sent,
        "goodput": round(result.goodput, 1),
        "admitted": len(ok),
        "admitted_p50_ms": ms(loadgen.percentile(ok, 50)),
        "admitted_p99_ms": ms(loadgen.percentile(ok, 99)),
        "refused": len(refused),
        "refused_p50_ms": ms(loadgen.percentile(refused, 50)),
        "refused_p99_ms": ms(loadgen.percentile(refused, 99)),
        "other_errors": dict(result.errors),
        "connections_opened": result.connections,
        "client_priority_raised": raised is not None,
        "client_send_lag_p50_ms": ms(loadgen.percentile(lags, 50)),
        "client_send_lag_p99_ms": ms(loadgen.percentile(lags, 99)),
        "new_connection_lag_p50_ms": ms(loadgen.percentile(connecting, 50)),
        "new_connection_lag_p99_ms": ms(loadgen.percentile(connecting, 99)),
        "cpu": window.usage(server.process.pid),
        "p99_target_ms": OVERLOAD_P99_TARGET_MS,
        "refusal_target_ms": REFUSAL_TARGET_MS,
    }


def print_overload(report: dict[str, Any]) -> None:
    o = report["overload"]
    if not o:
        return
    print(
        f"\n(c) open loop at {o['offered_rate']:,.0f} req/s ({OVERLOAD_FACTOR:g}x (b)), "
        f"{o['sent']} sent on {o['connections_opened']} connections:"
    )
    print(
        f"  goodput {o['goodput']:,.0f} req/s; admitted {o['admitted']}: "
        f"p50 {o['admitted_p50_ms']:.2f} ms / p99 {o['admitted_p99_ms']:.2f} ms "
        f"(target p99 <= {o['p99_target_ms']:g} ms)"
    )
    print(
        f"  refused (503) {o['refused']}: p50 {o['refused_p50_ms']:.2f} ms / "
        f"p99 {o['refused_p99_ms']:.2f} ms (target <= {o['refusal_target_ms']:g} ms); "
        f"other errors: {o['other_errors'] or 'none'}"
    )
    print(
        f"  arrival to request written (in both latencies): on a kept connection "
        f"p50 {o['client_send_lag_p50_ms']:.2f} ms / p99 {o['client_send_lag_p99_ms']:.2f} ms, "
        f"on a new one p50 {o['new_connection_lag_p50_ms']:.2f} ms / "
        f"p99 {o['new_connection_lag_p99_ms']:.2f} ms; client scheduled first "
        f"(nice {CLIENT_NICENESS}): {'yes' if o['client_priority_raised'] else 'no, not permitted'}"
    )
    print_cpu("(c)", o["cpu"])


def print_cpu(part: str, cpu: dict[str, Any] | None) -> None:
    if cpu:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores"].items())
        print(f"  {part} CPU cores used: {cores}; machine busy {cpu['machine_busy_pct']}%")


# --------------------------------------------------------------------------------------------
# profile: py-spy raw (collapsed) stacks -> cumulative and self samples per function


REPOSITORY = f"{Path(__file__).resolve().parent.parent}/"
PROCESS_FRAME = re.compile(r'^process (\d+):"[^"]*"(;|$)')


def _frame_key(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (to/file.py)`: merge lines of one function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", REPOSITORY):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


ROLES = (  # first marker found in a stack names the thread it was sampled on
    ("eventlog/group_commit.py", "group-commit thread (save + commit)"),
    ("anyio/_backends/_asyncio.py", "anyio worker threads"),
    ("concurrent/futures/thread.py", "store-call threads (command handlers)"),
)
# Frames every stack of a thread passes through; left out of the cumulative listing.
PLUMBING = re.compile(
    r"\((multiprocessing/|threading\.py|<string>|uvicorn/_subprocess\.py|uvicorn/supervisors/"
    r"|uvicorn/_compat\.py|uvicorn/main\.py|write_api/main\.py|strata-write-api"
    r"|asyncio/runners\.py)|^Server\.(run|serve|_serve|main_loop) "
)


def _package(frame_key: str) -> str:
    """`func (fastapi/routing.py)` -> `fastapi`; stdlib modules keep their module name."""
    where = frame_key.rpartition(" (")[2].rstrip(")")
    if not where or where.startswith("<"):
        return where or "(native / no Python frame)"
    return where.split("/", 1)[0].removesuffix(".py")


def _area(stack: str, leaf_package: str) -> str:
    """Which part of a request's path one sample belongs to (stack: normalized frames)."""
    if "GroupCommitter._run " in stack:
        if leaf_package.startswith("psycopg"):
            return "commit thread: psycopg (SQL building, adapting, I/O)"
        return "commit thread: eventsourcing save / recorder Python"
    if "_worker (concurrent/futures/thread.py)" in stack:
        if "Repository.get " in stack:
            return "handler thread: load aggregate (Repository.get)"
        if "GroupCommitter.commit " in stack:
            return "handler thread: hand-off to commit thread, wait"
        if "CommandService." in stack:
            return "handler thread: decide (domain + eventsourcing)"
        return "handler thread: executor / threading overhead"
    if "solve_dependencies " in stack:
        if "ModelField.validate " in stack:
            return "event loop: body validation (pydantic, EmailStr)"
        return "event loop: dependencies, headers, body read"
    if "run_endpoint_function " in stack:
        return "event loop: endpoint coroutine + thread hop"
    if "serialize_response " in stack:
        return "event loop: response serialization"
    if "FastAPI.__call__ " in stack:
        return "event loop: ASGI middleware, routing, response (FastAPI/Starlette)"
    return "event loop: uvicorn HTTP, asyncio/uvloop, other"


def summarize_profile(
    path: Path, rate: int, seconds: float, top: int = 25
) -> dict[str, Any] | None:
    """Cumulative and self samples per function from py-spy's raw (collapsed) stacks."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    per_process: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        pid = "?"
        while match := PROCESS_FRAME.match(stack):  # nested: supervisor;worker;frames...
            pid = match.group(1)
            stack = stack[match.end() :]
        frames = [_frame_key(f) for f in stack.split(";") if f]
        total += count
        per_process[pid] += count
        if not frames:
            packages["(native / no Python frame)"] += count
            continue
        packages[_package(frames[-1])] += count
        areas[_area(";".join(frames) + ";", _package(frames[-1]))] += count
        for key in set(frames):
            if not PLUMBING.search(key):
                inclusive[key] += count
        exclusive[frames[-1]] += count
        role = next((label for marker, label in ROLES if marker in stack), "event loop thread")
        roles[role] += count
    if not total:
        return None

    def rows(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [
            {"function": key, "samples": n, "pct": round(100 * n / total, 1)}
            for key, n in counter.most_common(limit)
        ]

    possible = rate * max(1, round(seconds))
    return {
        "file": str(path),
        "samples": total,
        # share of the window in which each process had a thread holding its GIL
        "gil_busy_pct": {pid: round(100 * n / possible, 1) for pid, n in per_process.most_common()},
        "threads": rows(roles, 10),
        "areas": rows(areas, 20),
        "self_by_package": rows(packages, 15),
        "cumulative": rows(inclusive, top),
        "self": rows(exclusive, 15),
    }


# --------------------------------------------------------------------------------------------
# reporting


SERVER_PACKAGES = ("write_api", "runtime", "eventlog", "domain")


def server_code_digest() -> str:
    """A short hash of the server's Python sources, to tell which code a figure belongs to."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in SERVER_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def build_report(
    args: argparse.Namespace,
    raw: RawResult,
    raw_cpu: dict[str, Any] | None,
    api: loadgen.LoadResult,
    api_cpu: dict[str, Any] | None,
    batches: dict[str, Any],
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    ratio = api.rate / raw.rate if raw.rate else 0.0
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(STARTED)),
        "server_code": server_code_digest(),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "raw": {
            "clients": raw.clients,
            "events": raw.events,
            "rate": round(raw.rate, 1),
            "p50_ms": ms(loadgen.percentile(raw.latencies, 50)),
            "p99_ms": ms(loadgen.percentile(raw.latencies, 99)),
            "errors": dict(raw.errors),
            "cpu": raw_cpu,
        },
        "api": {
            "command": args.command,
            "workers": args.workers,
            "clients": api.clients,
            "requests_ok": api.ok,
            "rate": round(api.rate, 1),
            "p50_ms": ms(loadgen.percentile(api.latencies, 50)),
            "p99_ms": ms(loadgen.percentile(api.latencies, 99)),
            "per_second": api.per_second[: math.ceil(api.seconds)],
            "errors": dict(api.errors),
            "error_ratio": round(api.error_ratio, 5),
            "warmup_ok": api.warmup_ok,
            "warmup_errors": api.warmup_errors,
            "sample_errors": api.sample_errors,
            "cpu": api_cpu,
            "server_cpu_ms_per_request": round(
                1000 * api_cpu["cpu_s"].get("write API", 0) / api.ok, 3
            )
            if api_cpu and api.ok
            else None,
            "client_cpu_ms_per_request": round(
                1000 * api_cpu["cpu_s"].get("client (bench process)", 0) / api.ok, 3
            )
            if api_cpu and api.ok
            else None,
            "profiled": args.profile,
            "group_commit": batches,
            "connections_per_process": getattr(api, "connections_per_process", {}),
        },
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "profile": profile,
    }


def print_table(report: dict[str, Any]) -> None:
    raw, api = report["raw"], report["api"]
    profiled = " (server under py-spy)" if api["profiled"] else ""
    rows = [
        (
            f"(a) raw PG, 1 event/tx, {raw['clients']} threads",
            f"{raw['rate']:,.0f} ev/s",
            f"p50 {raw['p50_ms']:.2f} ms / p99 {raw['p99_ms']:.2f} ms",
        ),
        (
            f"(b) write API {api['command']}, {api['clients']} conns, "
            f"{api['workers']} worker(s){profiled}",
            f"{api['rate']:,.0f} req/s",
            f"p50 {api['p50_ms']:.2f} ms / p99 {api['p99_ms']:.2f} ms",
        ),
        ("ratio b/a", f"{report['ratio']:.3f}", f"target >= {report['target_ratio']}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"\nwrite throughput, {report['seconds']:g} s measured "
        f"after {report['warmup']:g} s warm-up; started {report['started']}, "
        f"server code {report['server_code']}"
    )
    for label, rate, extra in rows:
        print(f"  {label:<{width}}  {rate:>14}  {extra}")
    print(f"  (b) errors: {api['errors'] or 'none'} (ratio {api['error_ratio']:.3%})")
    series = " ".join(str(n) for n in api["per_second"])
    print(f"  (b) 2xx per second over the window: {series}")
    spread = " / ".join(str(n) for n in api["connections_per_process"].values())
    print(f"  (b) keep-alive connections per server process: {spread or 'unknown'}")
    for name, part in (("(a)", raw), ("(b)", api)):
        print_cpu(name, part["cpu"])
    if api["server_cpu_ms_per_request"] is not None:
        print(
            f"  (b) CPU per request: server {api['server_cpu_ms_per_request']:.3f} ms, "
            f"client {api['client_cpu_ms_per_request']:.3f} ms"
        )
    batches = api["group_commit"]
    print(
        f"  (b) users store, whole run: {batches['events']} events in "
        f"{batches['transactions']} transactions ({batches['events_per_transaction']} per tx)"
    )
    if report["target_met"]:
        print("TARGET MET")
    else:
        print(f"TARGET MISSED (ratio {report['ratio']:.3f} < {report['target_ratio']})")
    profile = report["profile"]
    if profile:
        print(
            f"\nserver profile: {profile['samples']} py-spy samples of GIL-holding threads "
            f"over the measured window; raw stacks in {profile['file']}"
        )
        busy = ", ".join(f"pid {pid} {pct}%" for pid, pct in profile["gil_busy_pct"].items())
        print(f"  GIL held (share of the window): {busy}")
        activity = profile.get("pg_activity")
        if activity:
            print(
                f"  users store connections (pg_stat_activity every 50 ms): inside a transaction "
                f"in {activity['in_transaction_pct']}% of samples, "
                f"{activity['mean_connections_in_transaction']} on average; there:"
            )
            for what, pct in activity["what_they_wait_for_pct"].items():
                print(f"    {pct:5.1f}%  {what}")
        print("  by thread:")
        for row in profile["threads"]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  by part of the request path:")
        for row in profile["areas"]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  self time by package (leaf frame):")
        for row in profile["self_by_package"]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print(f"  top {len(profile['cumulative'])} cumulative (inclusive):")
        for row in profile["cumulative"]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")
        print("  top self:")
        for row in profile["self"]:
            print(f"    {row['pct']:5.1f}%  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per part")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--raw-clients", type=int, default=8, help="(a) threads")
    parser.add_argument("--clients", type=int, default=32, help="(b) HTTP connections")
    parser.add_argument("--workers", type=int, default=2, help="(b) STRATA_WEB_WORKERS")
    parser.add_argument(
        "--command",
        choices=("register", "rename", "noop", "healthz"),
        default="register",
        help=(
            "noop: the register request answered by the same FastAPI stack without a store"
            " (bench/framework_ceiling.py); healthz: GET /healthz of the write API"
        ),
    )
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database"
    )
    parser.add_argument("--profile", action="store_true", help="run the server under py-spy")
    parser.add_argument(
        "--overload",
        action="store_true",
        help=f"(c) then drive the same server open-loop at {OVERLOAD_FACTOR:g}x the rate of (b)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the server log and profile"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document only")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="strata-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    base = args.pg.rstrip("/")

    log(f"(a) raw PostgreSQL: {args.raw_clients} threads, {args.seconds:g} s ...")
    raw_window = Window()
    try:
        raw = raw_postgres(
            base,
            clients=args.raw_clients,
            seconds=args.seconds,
            warmup=args.warmup,
            window=raw_window,
        )
    except (RuntimeError, psycopg.Error) as error:
        log(f"write_throughput: FAILED: {error}")
        sys.exit(2)
    log(f"    {raw.rate:,.0f} ev/s")

    serving_keys = contextlib.ExitStack()  # the identity's JWKS, which the server trusts
    jwks_url = serving_keys.enter_context(trusted_identity())
    log(
        f"(b) write API: {args.command}, {args.clients} connections, {args.workers} worker(s)"
        f"{', under py-spy' if args.profile else ''}, {args.seconds:g} s ..."
    )
    api_window = Window()
    profiler = Profiler(base, out, args.seconds) if args.profile else None
    try:
        api, server = api_end_to_end(
            base,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            workers=args.workers,
            command=args.command,
            profiler=profiler,
            log_dir=out,
            window=api_window,
            jwks_url=jwks_url,
        )
    except (RuntimeError, psycopg.Error) as error:
        serving_keys.close()  # its server thread would keep this process alive
        log(f"write_throughput: FAILED: {error}")
        sys.exit(2)
    api_cpu = api_window.usage(server.process.pid)
    overload = None
    if args.overload and api.rate > 0 and server.overload_requests is not None:
        overload = overloaded(server, api.rate * OVERLOAD_FACTOR, args.seconds)
    stop_server(server)
    serving_keys.close()
    log(f"    {api.rate:,.0f} req/s; server log in {server.log_path}")

    profile = None
    if profiler is not None:
        profile = summarize_profile(profiler.path, Profiler.RATE, args.seconds)
        if profile is not None:
            profile["pg_activity"] = profiler.activity.report()
        if profile is None:
            log(f"write_throughput: no py-spy samples in {profiler.path}; see {profiler.log_path}")

    stored = args.command in ("register", "rename")  # noop and healthz write nothing
    batches = (
        commit_batches(base)
        if stored
        else {"events": 0, "transactions": 0, "events_per_transaction": None}
    )
    report = build_report(args, raw, raw_window.usage(), api, api_cpu, batches, profile)
    report["overload"] = overload
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
        print_overload(report)

    if api.ok == 0 or api.error_ratio > MAX_ERROR_RATIO:
        log(
            f"write_throughput: FAILED: {api.error_count} of {api.ok + api.error_count} API "
            f"requests were not 2xx ({api.error_ratio:.2%} > {MAX_ERROR_RATIO:.0%}): "
            f"{dict(api.errors)}; samples: {api.sample_errors}\n"
            "--- write API log (tail) ---\n" + server.log_tail()
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
