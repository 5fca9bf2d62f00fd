"""An ASGI app served over real HTTP by uvicorn in a thread of the test process, on a free port."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.support.processes import free_port


@contextmanager
def served(
    app: object, seconds: float = 20, http: type[asyncio.Protocol] | str = "auto"
) -> Iterator[str]:
    """Serve `app` (its lifespan run) for the block, with the `http` protocol; yields its base
    URL."""
    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
