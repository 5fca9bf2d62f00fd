"""The fulfilment's read models through the whole system in one process (the embedded default:
write API, embedded fan-out, read routes under /read), against the provider simulators as real
processes: the payments ledger, the shipments board, the sagas (the parked ones listed and
counted in /metrics), and the order's detail showing its fulfilment."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from contexts.fulfilment.definition import FulfilmentPolicy
from contexts.settings import Settings
from embedded.app import create_app
from tests.support.api import add_line, create_order, register
from tests.support.auth import OPERATOR
from tests.support.servers import wait_until
from tests.support.simulators import CARRIER, PAYMENT_PROVIDER, RunningSimulator, process_fixture

provider = process_fixture(PAYMENT_PROVIDER)
carrier = process_fixture(CARRIER)
SHORT = timedelta(milliseconds=300)
SCHEDULING = timedelta(seconds=3)


@pytest.fixture
def system(
    tmp_path: Path, provider: RunningSimulator, carrier: RunningSimulator
) -> Iterator[TestClient]:
    provider.reset()
    carrier.reset()
    settings = Settings(
        data_dir=tmp_path / "var",
        payment_provider_url=provider.base,
        carrier_url=carrier.base,
    )
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        yield client


def place(client: TestClient, price: str, currency: str = "EUR") -> tuple[str, str]:
    user = register(client)
    order = create_order(client, user, currency)
    add_line(client, order, "A", 1, price)
    assert client.post(f"/orders/{order}/place").status_code == 200
    return user, order


def read(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(f"/read{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def read_fulfilment(client: TestClient, order: str, status: str) -> dict[str, Any]:
    def found() -> dict[str, Any]:
        response = client.get(f"/read/fulfilments/{order}")
        return response.json() if response.status_code == 200 else {}

    wait_until(lambda: found().get("status") == status, 30, f"{order} {status}: {found()}")
    return found()


def timed(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps with their times as datetimes (the read API writes `Z`, the write API `+00:00`)."""
    return [{**step, "at": datetime.fromisoformat(step["at"])} for step in steps]


@pytest.mark.parametrize(("currency", "price"), [("EUR", "20.00"), ("JPY", "2000")])
def test_a_fulfilled_order_in_every_read_model(
    system: TestClient, currency: str, price: str
) -> None:
    """The payment's amount as the price was written: in yen without decimals."""
    user, order = place(system, price, currency)
    saga = read_fulfilment(system, order, "completed")
    payment_id, shipment_id = ids.payment_id(UUID(order)), ids.shipment_id(UUID(order))

    by_order = read(system, "/payments", order_id=order)["items"]
    assert [(p["id"], p["status"], p["amount"], p["currency"]) for p in by_order] == [
        (str(payment_id), "captured", price, currency)
    ]
    assert read(system, "/payments", user_id=user)["items"] == by_order
    assert read(system, f"/payments/{payment_id}")["reference"]
    shipment = read(system, f"/shipments/{shipment_id}")
    assert (shipment["status"], shipment["order_id"]) == ("dispatched", order)
    assert shipment["carrier"] and shipment["reference"]
    board = read(system, "/shipments", status="dispatched")["items"]
    assert [item["id"] for item in board] == [str(shipment_id)]

    written = system.get(f"/fulfilments/{order}").json()  # the saga in its event store
    assert timed(saga["steps"]) == timed(written["steps"])
    assert [step["state"] for step in saga["steps"]] == ["done"] * 6
    detail = read(system, f"/orders/{order}")
    assert detail["status"] == "shipped"
    assert detail["fulfilment"]["status"] == "completed"
    assert detail["fulfilment"]["steps"] == saga["steps"]


def test_a_parked_saga_is_listed_and_counted(
    system: TestClient, provider: RunningSimulator, carrier: RunningSimulator
) -> None:
    """No carrier answers, so scheduling times out; the shipment's cancellation waits for the
    booking's answer (docs/fulfilment.md), which never comes, and the saga parks on it."""
    fulfilment: Any = system.app.state.services["fulfilment"]  # type: ignore[attr-defined]
    fulfilment.policy = FulfilmentPolicy(schedule_timeout=SCHEDULING, compensation_timeout=SHORT)
    carrier.control(outage=True)
    _, order = place(system, "15.00")

    saga = read_fulfilment(system, order, "parked")
    assert saga["step"] == "cancel_shipment" and saga["attention"]
    listed = read(system, "/fulfilments", status="parked")["items"]
    assert [item["order_id"] for item in listed] == [order]
    assert read(system, f"/orders/{order}")["fulfilment"]["status"] == "parked"
    metrics = system.get("/read/metrics").text
    assert "strata_fulfilment_parked 1.0" in metrics


def test_bad_filters_are_refused(system: TestClient) -> None:
    assert system.get("/read/fulfilments", params={"status": "stuck"}).status_code == 422
    assert system.get("/read/payments", params={"order_id": "nope"}).status_code == 422
    assert system.get(f"/read/shipments/{ids.shipment_id(UUID(int=1))}").status_code == 404
