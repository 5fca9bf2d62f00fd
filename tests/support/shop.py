"""A client of the fulfilment across processes: it places orders through the users' and orders'
write APIs, and tells how each order's fulfilment ended, checked against the payment provider's
own ledger (the invariant of issue 9: shipped with exactly one capture, cancelled with zero net
charge, or parked and listed)."""

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from contexts.fulfilment import ids
from tests.support.auth import OPERATOR

ENDED = ("shipped", "cancelled", "parked")
RETRIED = (502, 503, 504)


@dataclass(frozen=True)
class Shop:
    users: str
    orders: str
    fulfilment: str
    provider: str
    """Base URLs: the write APIs of users, orders and fulfilment, and the payment provider."""

    def place(self, price: str) -> str:
        """A new user's order of one line at `price`, placed; its id."""
        order = self.unplaced(price)
        _post(f"{self.orders}/orders/{order}/place", None)
        return order

    def unplaced(self, price: str) -> str:
        """A new user's order of one line at `price`, not placed yet; its id."""
        email = f"shop-{uuid.uuid4().hex}@example.com"
        user = _post(f"{self.users}/users", {"name": "Ada", "email": email})
        body = {"user_id": user["id"], "currency": "EUR"}
        order = str(_post(f"{self.orders}/orders?position={user['position']}", body)["id"])
        line = {"sku": "A", "quantity": 1, "unit_price": price}
        _post(f"{self.orders}/orders/{order}/lines", line)
        return order

    def saga(self, order: str) -> dict[str, Any]:
        """The order's fulfilment as its write service shows it; {} if unknown or unreachable."""
        try:
            response = httpx.get(
                f"{self.fulfilment}/fulfilments/{order}", timeout=5, headers=OPERATOR
            )
        except httpx.TransportError:
            return {}
        return dict(response.json()) if response.status_code == 200 else {}

    def order_status(self, order: str) -> str:
        response = httpx.get(f"{self.orders}/orders/{order}", timeout=5, headers=OPERATOR)
        response.raise_for_status()
        return str(response.json()["status"])

    def ending(self, order: str) -> str | None:
        """How the order's fulfilment ended (one of ENDED), or None while it runs."""
        status = self.saga(order).get("status")
        if status == "completed" and self.order_status(order) == "shipped":
            return "shipped"
        if status == "cancelled" and self.order_status(order) == "cancelled":
            return "cancelled"
        return "parked" if status == "parked" else None

    def charges(self, order: str) -> tuple[int, Decimal]:
        """The provider's captures of the order's payment, and the net charge of its holds."""
        prefix = f"{ids.payment_id(uuid.UUID(order))}:"
        response = httpx.get(f"{self.provider}/control/ledger", timeout=5)
        response.raise_for_status()
        ledger = response.json()
        operations = [op for op in ledger["operations"] if op["key"].startswith(prefix)]
        captures = sum(1 for op in operations if op["key"] == f"{prefix}capture")
        references = {op["reference"] for op in operations if op.get("reference")}
        holds = ledger["authorizations"]
        net = sum((Decimal(holds[ref]["net_charge"]) for ref in references), Decimal(0))
        return captures, net

    def assert_ended_well(self, order: str) -> str:
        """The order ended in exactly one of the three states, as the provider's ledger has it."""
        ending = self.ending(order)
        captures, net = self.charges(order)
        if ending == "shipped":
            assert captures == 1, (order, captures)
        elif ending == "cancelled":
            assert net == 0, (order, net)
        else:
            assert ending == "parked", (order, self.saga(order))
        return ending


def _post(url: str, body: object, attempts: int = 20) -> dict[str, Any]:
    """POST until answered, through restarts of the service: its 2xx body."""
    for _ in range(attempts):
        try:
            response = httpx.post(url, json=body, timeout=10, headers=OPERATOR)
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code not in RETRIED:
            assert response.is_success, (url, response.status_code, response.text)
            return dict(response.json())
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered")
