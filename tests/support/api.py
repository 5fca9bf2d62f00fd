"""Small helpers for driving the write API in tests."""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventlog.stores import Services


def services(client: TestClient) -> Services:
    """The stores of the app the client drives (a FastAPI app, kept by the client as given)."""
    app = client.app
    assert isinstance(app, FastAPI)
    held: Services = app.state.services
    return held


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def register(client: TestClient, name: str = "Ada Lovelace", email: str | None = None) -> str:
    response = client.post("/users", json={"name": name, "email": email or unique_email()})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_order(client: TestClient, user_id: str, currency: str = "EUR") -> str:
    response = client.post("/orders", json={"user_id": user_id, "currency": currency})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def add_line(client: TestClient, order_id: str, sku: str, quantity: int, price: str) -> Any:
    response = client.post(
        f"/orders/{order_id}/lines", json={"sku": sku, "quantity": quantity, "unit_price": price}
    )
    assert response.status_code == 200, response.text
    return response.json()


def store_state(client: TestClient) -> tuple[int, int]:
    """The last position of each event store: unchanged means nothing was appended."""
    stores = services(client)
    return (
        stores.users.recorder.max_notification_id() or 0,
        stores.orders.recorder.max_notification_id() or 0,
    )


def assert_problem(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"].startswith("/problems/")
    text = body["detail"] + " ".join(e["field"] for e in body.get("errors", []))
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return body


HEAD_COMPARED = ("content-type", "content-length", "etag", "cache-control")


def assert_head_is_get_without_body(get: httpx.Response, head: httpx.Response) -> None:
    """HEAD answered as GET was: its status and headers, without the body."""
    assert get.status_code == 200 and get.content
    assert head.status_code == 200
    assert head.content == b""
    for name in HEAD_COMPARED:
        assert head.headers.get(name) == get.headers.get(name), name
