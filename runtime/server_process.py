"""What every long-running process of strata does once, in its composition root, before it
serves."""

import gc

from runtime.logs import configure as configure_logging


def configure_server_process(log_level: str) -> None:
    """Log JSON lines at `log_level` (`runtime.logs`), and leave the objects alive now out of
    every later full garbage collection.

    Once it has imported its modules, a service holds some 140,000 objects that live as long as
    it does: functions and classes, FastAPI's and pydantic's models, the contexts' tables.
    CPython's full collection (generation 2) traverses every one of them each time, and the
    process does nothing else meanwhile: 57 ms for the write API on a quiet 2-core VM, 150 to 230 ms
    on a busy one, several times a minute under load, each a stall of every request and event in
    flight (docs/benchmarks.md, "Full garbage collections"). `gc.freeze()` moves them into a
    permanent generation that collections skip (objects there are still freed when their last
    reference goes); the collection before it keeps what is already garbage out of it.

    Only for a process that goes on serving: in a test run it would keep whatever is alive at
    that moment for good."""
    configure_logging(log_level)
    gc.collect()
    gc.freeze()
