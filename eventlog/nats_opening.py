"""Waiting for NATS at start as for a store (`runtime.opening`): tries a few seconds long,
pauses doubling from 0.5 s to 5 s between them, one warning line per failed try, `/readyz`
saying "NATS is not reachable yet (...)" meanwhile. Once connected, nats-py reconnects by
itself (`eventlog.jetstream.connect`)."""

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

from eventlog.outages import NATS_OUTAGES
from runtime.opening import Opening, closed_on, on_loop

CONNECT_TRY_SECONDS = 3.0
"""How long one try to connect lasts (nats-py tries the servers every second in it)."""


def nats_opening(open_: Callable[[], Coroutine[Any, Any, NatsClient]]) -> Opening[NatsClient]:
    """The opening of what `open_` connects, on the running loop (the client lives on it)."""
    loop = asyncio.get_running_loop()
    return Opening("NATS", on_loop(loop, open_), closed_on(loop, close_nats), outages=NATS_OUTAGES)


async def close_nats(nc: NatsClient) -> None:
    with suppress(nats.errors.Error, TimeoutError):
        await asyncio.wait_for(nc.close(), 5)
