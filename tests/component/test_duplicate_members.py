"""A command body whose JSON object names a member twice (`{"name": "a", "name": "b"}`) is
ambiguous: another parser on the way may act on the first value. The write services refuse it
with a 422 naming the repeated member, top level or nested, also when the two names differ
only by JSON escapes, and append nothing."""

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contexts.payments.service import PaymentsService
from tests.support.api import assert_problem, create_order, register, services, store_state

JSON = {"Content-Type": "application/json"}
EMAIL = '"email": "dup-%s@example.org"'

REGISTRATIONS = [
    ('{"name": "Ada", "name": "Bob", %s}', "body.name"),
    ('{"na\\u006de": "Ada", "name": "Bob", %s}', "body.name"),
    ('{"name": "Ada", %s, "\\u0065mail": "x@example.org"}', "body.email"),
    ('{"name": "Ada", %s, "extra": {"city": "Oslo", "city": "Rome"}}', "body.extra.city"),
    ('{"name": "Ada", %s, "extra": [1, {"a": {"b": 1, "c": 2, "b": 3}}]}', "body.extra.1.a.b"),
    ('[{"name": "Ada", "name": "Bob"}]', "body.0.name"),
]


def assert_duplicate(response: Any, field: str, name: str) -> None:
    problem = assert_problem(response, 422)
    assert problem["type"] == "/problems/validation-error"
    assert problem["detail"] == f"invalid input: {field}"
    assert problem["instance"] == response.request.url.path
    (error,) = problem["errors"]
    assert error["field"] == field
    assert f"the member {name!r} appears twice in one object" in error["message"]


@pytest.mark.parametrize(("template", "field"), REGISTRATIONS)
def test_a_registration_naming_a_member_twice_is_refused(
    client: TestClient, template: str, field: str
) -> None:
    before = store_state(client)
    body = template.replace("%s", EMAIL % uuid.uuid4().hex[:8]) if "%s" in template else template
    response = client.post("/users", content=body.encode(), headers=JSON)
    assert_duplicate(response, field, field.rsplit(".", 1)[1])
    assert store_state(client) == before


def test_a_rename_naming_the_name_twice_changes_nothing(client: TestClient) -> None:
    user = register(client, name="Ada Lovelace")
    before = client.get(f"/users/{user}").json()
    for body in (b'{"name": "Bob", "name": "Eve"}', b'{"name": "Bob", "n\\u0061me": "Eve"}'):
        response = client.put(f"/users/{user}/name", content=body, headers=JSON)
        assert_duplicate(response, "body.name", "name")
    assert client.get(f"/users/{user}").json() == before


def test_an_order_line_naming_the_quantity_twice_changes_nothing(client: TestClient) -> None:
    order = create_order(client, register(client))
    before = (store_state(client), client.get(f"/orders/{order}").json())
    body = b'{"sku": "A-1", "quantity": 1, "unit_price": "1.00", "quantity": 1000}'
    response = client.post(f"/orders/{order}/lines", content=body, headers=JSON)
    assert_duplicate(response, "body.quantity", "quantity")
    assert (store_state(client), client.get(f"/orders/{order}").json()) == before


def test_a_payment_naming_the_amount_twice_changes_nothing(client: TestClient) -> None:
    payments = services(client).application(PaymentsService)
    before = payments.recorder.max_notification_id()
    fields = {"order_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "currency": "EUR"}
    body = json.dumps(fields)[:-1] + ', "amount": "1.00", "amount": "9999.00"}'
    response = client.post(f"/payments/{uuid.uuid4()}/authorize", content=body, headers=JSON)
    assert_duplicate(response, "body.amount", "amount")
    assert payments.recorder.max_notification_id() == before


BOM = b"\xef\xbb\xbf"  # a document the fast decoder leaves to `json`, scanned on its own


def test_a_document_only_json_reads_is_checked_as_well(client: TestClient) -> None:
    before = store_state(client)
    body = BOM + b'{"name": "Ada", "email": "a@example.org", "name": "Bob"}'
    assert_duplicate(client.post("/users", content=body, headers=JSON), "body.name", "name")
    assert store_state(client) == before


@pytest.mark.parametrize("prefix", [b"", BOM])
def test_names_that_appear_as_values_are_no_duplicates(client: TestClient, prefix: bytes) -> None:
    email = f"email-{uuid.uuid4().hex[:8]}@example.org"
    body = prefix + b'{"name": "email", "email": "%s"}' % email.encode()
    response = client.post("/users", content=body, headers=JSON)
    assert response.status_code == 201, response.text
