"""py-spy raw (collapsed) stacks -> cumulative and self samples per function, by thread role,
by package and by part of the write API's request path."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


STORE_CALL_THREAD = "Runner._serve (runtime/http/deadlines.py)"
ROLES = (  # first marker found in a stack names the thread it was sampled on
    ("eventlog/group_commit.py", "group-commit thread (save + commit)"),
    ("anyio/_backends/_asyncio.py", "anyio worker threads"),
    ("concurrent/futures/thread.py", "store-call threads (command handlers)"),
    (STORE_CALL_THREAD, "store-call threads (command handlers)"),
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
    if "_worker (concurrent/futures/thread.py)" in stack or STORE_CALL_THREAD in stack:
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


@dataclass
class Tally:
    """Samples of py-spy's raw stacks counted by function, thread role, process, package and
    part of the request path."""

    inclusive: Counter[str] = field(default_factory=Counter)
    exclusive: Counter[str] = field(default_factory=Counter)
    roles: Counter[str] = field(default_factory=Counter)
    per_process: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, line: str) -> None:
        """One line: `process <pid>:"<cmd>";frame;frame;... <count>`."""
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            return
        count = int(count_text)
        pid = "?"
        while match := PROCESS_FRAME.match(stack):  # nested: supervisor;worker;frames...
            pid = match.group(1)
            stack = stack[match.end() :]
        frames = [_frame_key(f) for f in stack.split(";") if f]
        self.total += count
        self.per_process[pid] += count
        if not frames:
            self.packages["(native / no Python frame)"] += count
            return
        self.packages[_package(frames[-1])] += count
        self.areas[_area(";".join(frames) + ";", _package(frames[-1]))] += count
        for key in set(frames):
            if not PLUMBING.search(key):
                self.inclusive[key] += count
        self.exclusive[frames[-1]] += count
        role = next((label for marker, label in ROLES if marker in stack), "event loop thread")
        self.roles[role] += count

    def rows(self, counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [
            {"function": key, "samples": n, "pct": round(100 * n / self.total, 1)}
            for key, n in counter.most_common(limit)
        ]


def summarize_profile(
    path: Path, rate: int, seconds: float, top: int = 25
) -> dict[str, Any] | None:
    """Cumulative and self samples per function from py-spy's raw (collapsed) stacks."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    tally = Tally()
    for line in text.splitlines():
        tally.add(line)
    if not tally.total:
        return None
    possible = rate * max(1, round(seconds))
    busy = {pid: round(100 * n / possible, 1) for pid, n in tally.per_process.most_common()}
    return {
        "file": str(path),
        "samples": tally.total,
        # share of the window in which each process had a thread holding its GIL
        "gil_busy_pct": busy,
        "threads": tally.rows(tally.roles, 10),
        "areas": tally.rows(tally.areas, 20),
        "self_by_package": tally.rows(tally.packages, 15),
        "cumulative": tally.rows(tally.inclusive, top),
        "self": tally.rows(tally.exclusive, 15),
    }


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """One listing of a summary: its title, then a share and a name a line."""
    print(title)
    for row in rows:
        print(f"    {row['pct']:5.1f}%  {row['function']}")
