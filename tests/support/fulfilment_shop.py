"""The write API of every context in one process, wired to the provider simulators, as the
fulfilment's component tests use it: a client with an operator's token, and orders placed."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from contexts.fulfilment.definition import FulfilmentPolicy
from contexts.settings import Settings
from eventlog.jobs import Clock
from tests.support.api import add_line, create_order, register
from tests.support.auth import OPERATOR
from tests.support.simulators import RunningSimulator
from write_api.app import create_app


@contextmanager
def shop_client(
    settings: Settings,
    provider: RunningSimulator,
    carrier: RunningSimulator,
    policy: FulfilmentPolicy,
    clock: Clock | None = None,
    **wiring: Any,
) -> Iterator[TestClient]:
    """The simulators reset, the settings pointed at them (and changed by `wiring`), the saga
    on `policy`."""
    provider.reset()
    carrier.reset()
    update = {"payment_provider_url": provider.base, "carrier_url": carrier.base, **wiring}
    app = create_app(settings.model_copy(update=update), clock=clock)
    with TestClient(app, headers=OPERATOR) as client:
        client.app.state.services["fulfilment"].policy = policy  # type: ignore[attr-defined]
        yield client


def place_order(client: TestClient, price: str, quantity: int = 1) -> str:
    """A new user's order of one line, placed; its id."""
    order = create_order(client, register(client))
    add_line(client, order, "A", quantity, price)
    assert client.post(f"/orders/{order}/place").status_code == 200
    return order
