"""CPU accounting from /proc: who burnt the cores during a measured window, and which
process of a tree holds which connections."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

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


def descendants(procs: dict[int, tuple[str, int, int]], root: int) -> set[int]:
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


def tick_deltas(
    start: CpuSnapshot, end: CpuSnapshot, exclude: Collection[int] = frozenset()
) -> Iterator[tuple[int, str, int]]:
    """(pid, comm, jiffies) of each process that used CPU between two snapshots, but those of
    `exclude` (a pid reused by another program counts from zero)."""
    for pid, (comm, _, ticks) in end.procs.items():
        before = start.procs.get(pid)
        delta = ticks - (before[2] if before and before[0] == comm else 0)
        if delta > 0 and pid not in exclude:
            yield pid, comm, delta


def cpu_usage(
    start: CpuSnapshot,
    end: CpuSnapshot,
    server_root: int | None,
    exclude: Collection[int] = frozenset(),
) -> dict[str, Any]:
    """Cores used by each party between two snapshots (1.0 = one core busy all the time)."""
    wall = end.at - start.at
    server = descendants(end.procs, server_root) if server_root else set()
    me = os.getpid()
    groups: Counter[str] = Counter()
    for pid, comm, delta in tick_deltas(start, end, exclude):
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
    for pid in sorted(descendants(cpu_snapshot().procs, root)):
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


def print_cpu(part: str, cpu: dict[str, Any] | None) -> None:
    if cpu:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in cpu["cores"].items())
        print(f"  {part} CPU cores used: {cores}; machine busy {cpu['machine_busy_pct']}%")
