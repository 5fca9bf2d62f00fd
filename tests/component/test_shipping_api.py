"""The shipping endpoints (at /shipments) and worker, on the embedded store and on PostgreSQL.

A command records intent and answers at once; the worker then calls the carrier (here an
in-process one answering each idempotency key once) for each job the intent opened.
"""

import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment.dispatch import CommandRefused, HttpParticipants
from contexts.settings import Settings
from contexts.shipping.service import CARRIER_JOBS, REFUSED, ShippingService
from contexts.shipping.worker import ShippingWorker
from eventlog.jobs import RetryLater
from runtime.auth.tokens import StaticToken
from tests.support.api import assert_problem, services
from tests.support.auth import IDENTITY, SAGA_CLIENT, SAGA_SCOPE
from tests.support.participants import (
    PROVIDERS_WORDS,
    FakeCarrier,
    ParticipantApi,
    client_without_workers,
)


class Shipments(ParticipantApi):
    def __init__(self, client: TestClient) -> None:
        self.carrier = FakeCarrier()
        shipping = services(client).application(ShippingService)
        super().__init__(client, "/shipments", shipping, ShippingWorker(shipping, self.carrier))

    def schedule(self, shipment: str, **body: str) -> Any:
        fields = {"order_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())} | body
        return self.client.post(f"/shipments/{shipment}/schedule", json=fields)

    def scheduled(self) -> str:
        shipment = new_id()
        assert self.schedule(shipment).status_code == 201
        self.run_jobs(shipment)
        assert self.state(shipment)["status"] == "scheduled"
        return shipment


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    yield from client_without_workers(settings)


@pytest.fixture
def shipments(client: TestClient) -> Shipments:
    return Shipments(client)


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_shipment_is_scheduled_dispatched_and_delivered(shipments: Shipments) -> None:
    shipment, order = new_id(), new_id()
    response = shipments.schedule(shipment, order_id=order)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/shipments/{shipment}"
    assert response.json()["position"].startswith("shipping:")
    assert shipments.state(shipment)["status"] == "requested"
    assert shipments.carrier.calls == []  # nobody waited on the carrier

    shipments.run_jobs(shipment)
    state = shipments.state(shipment)
    assert (state["status"], state["carrier"]) == ("scheduled", "Parcelforce")
    assert state["reference"] == f"PF-{shipment}"
    assert shipments.carrier.calls == [
        (f"{shipment}:schedule", ("schedule", UUID(shipment), UUID(order)))
    ]

    shipments.ask(shipment, "dispatch")
    shipments.ask(shipment, "dispatch")  # sent again (a retrying saga): nothing more
    assert shipments.jobs.keys(UUID(shipment)) == [f"{shipment}:dispatch"]
    shipments.run_jobs(shipment)
    assert shipments.state(shipment)["status"] == "dispatched"
    shipments.ask(shipment, "deliver")

    assert shipments.state(shipment)["status"] == "delivered"
    assert shipments.state(shipment)["version"] == 5
    assert shipments.carrier.performed("dispatch") == [f"{shipment}:dispatch"]


def test_no_carrier_for_a_shipment_fails_it_with_the_reason(shipments: Shipments) -> None:
    shipment = new_id()
    shipments.carrier.refusing = True
    shipments.schedule(shipment)
    shipments.run_jobs(shipment)

    state = shipments.state(shipment)
    assert (state["status"], state["failure_reason"]) == ("failed", "no carrier serves the address")
    assert shipments.jobs.of(UUID(shipment)) == []


@pytest.mark.parametrize(("written", "recorded"), PROVIDERS_WORDS)
def test_a_refusal_s_reason_is_made_legible_not_refused(
    shipments: Shipments, written: str, recorded: str | None
) -> None:
    shipments.carrier.refusing, shipments.carrier.reason = True, written
    shipment = new_id()
    shipments.schedule(shipment)
    shipments.run_jobs(shipment)

    state = shipments.state(shipment)
    assert (state["status"], state["failure_reason"]) == ("failed", recorded or REFUSED)
    assert shipments.jobs.of(UUID(shipment)) == []


def test_a_scheduled_shipment_is_cancelled_through_the_carrier(shipments: Shipments) -> None:
    shipment = shipments.scheduled()
    shipments.ask(shipment, "cancel")
    assert shipments.state(shipment)["status"] == "cancelling"
    shipments.run_jobs(shipment)

    assert shipments.state(shipment)["status"] == "cancelled"
    assert shipments.carrier.performed("cancel") == [f"{shipment}:cancel"]
    assert_problem(shipments.client.post(f"/shipments/{shipment}/dispatch"), 409, "is cancelled")


@pytest.mark.parametrize(
    ("done", "action", "message"),
    [
        (["dispatch"], "cancel", "a shipment on its way cannot be called back"),
        ([], "deliver", "the shipment is scheduled, it must be dispatched"),
        (["cancel"], "dispatch", "the shipment is cancelling, it must be scheduled"),
    ],
)
def test_invalid_intents_are_409_and_write_nothing(
    shipments: Shipments, done: list[str], action: str, message: str
) -> None:
    shipment = shipments.scheduled()
    for step in done:
        shipments.ask(shipment, step)
    before = shipments.position()

    assert_problem(shipments.client.post(f"/shipments/{shipment}/{action}"), 409, message)
    assert shipments.position() == before


def test_the_sagas_cancellation_of_a_shipment_on_its_way_is_refused_in_shippings_words(
    shipments: Shipments,
) -> None:
    saga = HttpParticipants(
        {"shipping": str(shipments.client.base_url)},
        shipments.client,
        StaticToken(IDENTITY.token(SAGA_CLIENT, ["service"], SAGA_SCOPE)),
    )
    shipment = shipments.scheduled()
    shipments.ask(shipment, "dispatch")
    with pytest.raises(CommandRefused) as refused:
        saga.send(f"{uuid.uuid4()}:cancel_shipment:0", "shipping", "cancel", UUID(shipment), None)
    assert str(refused.value) == (
        "cannot cancel: the shipment is dispatching, it must be scheduled;"
        " a shipment on its way cannot be called back"
    )


def test_asked_again_a_schedule_answers_the_shipment_as_it_is(shipments: Shipments) -> None:
    shipment, order, user = new_id(), new_id(), new_id()
    shipments.schedule(shipment, order_id=order, user_id=user)
    before = shipments.position()

    again = shipments.schedule(shipment, order_id=order, user_id=user)

    assert again.status_code == 201
    assert again.json()["version"] == 1
    assert shipments.position() == before
    changed = shipments.schedule(shipment, order_id=new_id(), user_id=user)
    assert_problem(changed, 409, "a shipment's request cannot change")


def test_while_the_carrier_is_down_the_job_stays_and_a_stale_one_calls_no_carrier(
    shipments: Shipments,
) -> None:
    shipment = new_id()
    shipments.schedule(shipment)
    [job] = shipments.jobs.of(UUID(shipment))
    shipments.carrier.down = True
    with pytest.raises(RetryLater, match="FakeCarrier is down"):
        shipments.run_jobs(shipment)
    assert shipments.jobs.keys(UUID(shipment)) == [f"{shipment}:schedule"]

    shipments.carrier.down = False
    shipments.run_jobs(shipment)
    shipments.worker.handle(job)  # delivered again, e.g. after its lease ran out

    assert (job.kind, shipments.state(shipment)["status"]) == (CARRIER_JOBS, "scheduled")
    assert [key for key, _ in shipments.carrier.calls] == [f"{shipment}:schedule"] * 2


def test_the_state_as_of_a_time_and_unknown_shipments(shipments: Shipments) -> None:
    shipment = new_id()
    shipments.schedule(shipment)
    requested_at = shipments.state(shipment)["modified_on"]
    shipments.run_jobs(shipment)

    then = shipments.client.get(f"/shipments/{shipment}", params={"as_of": requested_at})
    assert (then.json()["status"], then.headers["ETag"]) == ("requested", '"1"')
    assert_problem(shipments.client.get(f"/shipments/{new_id()}"), 404, "no Shipment with id")
    assert_problem(shipments.client.post(f"/shipments/{new_id()}/deliver"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"order_id": "not-a-uuid", "user_id": "2e31a84a-2ade-4076-83c6-62ab586bccdb"},
            "body.order_id",
        ),
        ({"order_id": "2e31a84a-2ade-4076-83c6-62ab586bccdb"}, "body.user_id"),
        ({"order_id": 1, "user_id": "2e31a84a-2ade-4076-83c6-62ab586bccdb"}, "body.order_id"),
    ],
)
def test_malformed_schedules_are_422_naming_the_field_and_write_nothing(
    shipments: Shipments, body: dict[str, object], field: str
) -> None:
    before = shipments.position()
    response = shipments.client.post(f"/shipments/{new_id()}/schedule", json=body)
    assert_problem(response, 422, field)
    assert shipments.position() == before
