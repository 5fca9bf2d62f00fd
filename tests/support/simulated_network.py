"""The provider simulators in the test's process, reached over HTTP through an httpx transport,
with the faults of the network between them and their callers.

Each simulator is its real app (`simulators.payment_provider`, `simulators.carrier`) served at a
host name of its own; its faults (outage, error rate, refusals) are set through its own control
endpoint, and its ledger read there. The transport adds what a simulator cannot show without a
wall clock: an answer lost after the operation was performed (a latency beyond the caller's
timeout looks so to the caller: it cannot tell whether the operation happened), and the caller
killed during the call, once the operation was performed (`Crash`). Their ledgers are in memory
(`:memory:`): the network lives as long as one test's example, and no test of it restarts a
simulator.
"""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from simulators import carrier, payment_provider
from simulators.ledger import IN_MEMORY

PAYMENT_PROVIDER = "payment-provider.test"
CARRIER = "carrier.test"
APPS: dict[str, Callable[[str], FastAPI]] = {
    PAYMENT_PROVIDER: payment_provider.create_app,
    CARRIER: carrier.create_app,
}


class Crash(BaseException):
    """The process is killed at this point: no handler catches it (it is no `Exception`), so
    nothing after it runs, as after a kill -9."""


def base_url(host: str) -> str:
    return f"http://{host}"


class SimulatedNetwork(httpx.BaseTransport):
    """Sends each request to the simulator of its host (`APPS`), in process: the request and
    its answer go through the app's ASGI interface, on an event loop of the network's own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._simulators = {
            host: httpx.ASGITransport(create(IN_MEMORY)) for host, create in APPS.items()
        }
        self.losing_answers: set[str] = set()
        """Hosts whose answers are lost once the operation is performed."""
        self.crash_in_call: set[str] = set()
        """Hosts whose next call kills the caller once the operation is performed."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        answer = self._loop.run_until_complete(self._exchange(host, request))
        if host in self.crash_in_call:
            self.crash_in_call.discard(host)
            raise Crash(f"killed during a call to {host}, after it performed {request.url.path}")
        if host in self.losing_answers:
            raise httpx.ReadTimeout(f"{host}: no answer in time (simulated)", request=request)
        return answer

    async def _exchange(self, host: str, request: httpx.Request) -> httpx.Response:
        answer = await self._simulators[host].handle_async_request(request)
        content = await answer.aread()
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=content, request=request
        )

    def control(self, host: str, **faults: Any) -> None:
        """Replace the simulator's control: these faults and rules, the others their defaults."""
        self._control("PUT", host, json=faults)

    def ledger(self, host: str) -> dict[str, Any]:
        ledger: dict[str, Any] = self._control("GET", host, path="/ledger").json()
        return ledger

    def forget(self, host: str) -> None:
        """The simulator forgets every record, as a provider that lost its data would."""
        self._control("POST", host, path="/reset")

    def heal(self, host: str) -> None:
        self.control(host)
        self.losing_answers.discard(host)
        self.crash_in_call.discard(host)

    def _control(self, method: str, host: str, path: str = "", **body: Any) -> httpx.Response:
        request = httpx.Request(method, f"{base_url(host)}/control{path}", **body)
        response = self._loop.run_until_complete(self._exchange(host, request))
        response.raise_for_status()
        return response

    def shut_down(self) -> None:
        """Close the network's event loop (`close`, which a client closing calls on its
        transport, leaves the network to the next process)."""
        self._loop.close()


@contextmanager
def simulated_network() -> Iterator[SimulatedNetwork]:
    """A network of fresh simulators (empty ledgers, no faults)."""
    network = SimulatedNetwork()
    try:
        yield network
    finally:
        network.shut_down()
