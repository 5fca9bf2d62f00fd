"""The provider simulators refuse a JSON body that names a member twice, as the services do:
a 422 naming the member, before the request is counted, recorded or its control applied."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from simulators import carrier, payment_provider
from tests.support.api import assert_problem

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(payment_provider.create_app(tmp_path / "ledger.sqlite")) as client:
        yield client


@pytest.fixture
def carrier_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(carrier.create_app(tmp_path / "ledger.sqlite")) as client:
        yield client


def assert_repeated(response: object, field: str) -> None:
    problem = assert_problem(response, 422, field)
    assert problem["type"] == "/problems/validation-error"
    assert [error["field"] for error in problem["errors"]] == [field]
    assert "appears twice in one object" in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": "1.00", "currency": "EUR", "amount": "900.00"}',
        b'{"amount": "1.00", "currency": "EUR", "\\u0061mount": "900.00"}',
    ],
)
def test_an_authorization_naming_the_amount_twice_records_nothing(
    provider: TestClient, body: bytes
) -> None:
    before = provider.get("/control/ledger").json()
    response = provider.post(
        "/authorizations", content=body, headers={**JSON, "Idempotency-Key": "k1"}
    )
    assert_repeated(response, "body.amount")
    assert provider.get("/control/ledger").json() == before
    sound = provider.post(
        "/authorizations",
        json={"amount": "1.00", "currency": "EUR"},
        headers={"Idempotency-Key": "k1"},
    )
    assert sound.status_code == 200, sound.text  # the key was not taken


def test_a_booking_naming_a_member_twice_records_nothing(carrier_client: TestClient) -> None:
    before = carrier_client.get("/control/ledger").json()
    ids = [uuid.uuid4() for _ in range(3)]
    body = f'{{"shipment_id": "{ids[0]}", "order_id": "{ids[1]}", "order_id": "{ids[2]}"}}'
    response = carrier_client.post(
        "/bookings", content=body.encode(), headers={**JSON, "Idempotency-Key": "b1"}
    )
    assert_repeated(response, "body.order_id")
    assert carrier_client.get("/control/ledger").json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"outage": false, "outage": true}', "body.outage"),
        (b'{"outage": true, "\\u006futage": false}', "body.outage"),
    ],
)
def test_a_control_naming_a_member_twice_changes_nothing(
    provider: TestClient, body: bytes, field: str
) -> None:
    before = provider.get("/control").json()
    assert_repeated(provider.put("/control", content=body, headers=JSON), field)
    assert provider.get("/control").json() == before


def test_a_malformed_control_is_still_a_validation_error(provider: TestClient) -> None:
    response = provider.put("/control", content=b'{"outage": tru}', headers=JSON)
    assert_problem(response, 422, "body")
