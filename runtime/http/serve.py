"""Serve an ASGI app factory with uvicorn: one process, or several workers that each get their
own share of the connections.

With several workers, uvicorn's supervisor (restarts, health pings, graceful stop) still runs
them, but they do not share one listening socket: on a shared socket the kernel wakes whichever
worker happens to accept first, and one worker was seen holding 29 of 32 connections while the
other core idled. Instead every worker listens on a socket of its own with `SO_REUSEPORT`, and
the kernel spreads new connections over those sockets evenly (by a hash of the client's address
and port). The supervisor itself holds a bound `SO_REUSEPORT` socket that never listens: it
reserves the port between worker restarts and receives no connections.
"""

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from runtime.http.unreadable_requests import ProblemHttpProtocol

log = logging.getLogger("strata.http")
BACKLOG = 2048


def listening_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket of this process alone in the port's `SO_REUSEPORT` group."""
    sock = _bound(host, port)
    sock.listen(backlog)
    return sock


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class PortReservation(socket.socket):
    """The supervisor's bound, never-listening socket. Handed to a worker process (pickled),
    it arrives there as that worker's own listening socket on the same address."""

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        host, port = self.getsockname()[:2]
        return listening_socket, (host, port)


def reserve_port(host: str, port: int) -> PortReservation:
    bound = _bound(host, port)
    return PortReservation(bound.family, bound.type, bound.proto, fileno=bound.detach())


def serve(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    worker_healthcheck_seconds: float = 30,
) -> None:
    """Serve the app `factory` ("module:function") until SIGINT or SIGTERM, logging through the
    process's own JSON log configuration (uvicorn's is left off)."""
    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_worker_healthcheck=int(worker_healthcheck_seconds),
        log_level=log_level,
        log_config=None,
        http=ProblemHttpProtocol,
        access_log=False,
    )
    if workers == 1:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    reservation = reserve_port(host, port)
    log.info("serving on %s:%d with %d workers, one SO_REUSEPORT socket each", host, port, workers)
    try:
        Multiprocess(config, sockets=[reservation]).run()
    finally:
        reservation.close()
