"""An order's fulfilment that is not there is said in the terms the caller used: the order id
of the path (`GET /fulfilments/{order_id}`, retry, skip, resolve), not the saga's id derived from
it, which the caller never sent (README: `detail` says what was wrong, in words to act on)."""

import uuid

from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from tests.support.api import add_line, assert_problem, create_order, register
from tests.support.servers import wait_until

NOTE = {"note": "settled by hand"}


def test_an_order_with_no_fulfilment_is_named_by_its_order_id(client: TestClient) -> None:
    unknown = str(uuid.uuid4())
    draft = create_order(client, register(client))  # an order whose saga has not started
    for order in (unknown, draft):
        expected = f"no fulfilment of order {order}"
        for response in (
            client.get(f"/fulfilments/{order}"),
            client.get(f"/fulfilments/{order}", params={"as_of": "2026-01-01T00:00:00Z"}),
            client.post(f"/fulfilments/{order}/retry"),
            client.post(f"/fulfilments/{order}/skip", json=NOTE),
            client.post(f"/fulfilments/{order}/resolve", json=NOTE),
        ):
            body = assert_problem(response, 404)
            assert body["detail"] == expected
            assert str(ids.saga_id(uuid.UUID(order))) not in response.text


def test_a_fulfilment_asked_for_before_it_started_is_named_by_its_order_id(
    client: TestClient,
) -> None:
    order = create_order(client, register(client))
    add_line(client, order, "A", 1, "20.00")
    assert client.post(f"/orders/{order}/place").status_code == 200
    started = lambda: client.get(f"/fulfilments/{order}").status_code == 200  # noqa: E731
    wait_until(started, 10, "the order's saga starts")
    response = client.get(f"/fulfilments/{order}", params={"as_of": "2000-01-01T00:00:00Z"})
    body = assert_problem(response, 404)
    assert body["type"] == "/problems/not-found-at-time"
    assert body["detail"].startswith(
        f"the fulfilment of order {order} did not exist yet at 2000-01-01T00:00:00+00:00;"
    )
