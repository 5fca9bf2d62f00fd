"""Stored events read back as the documented envelope, on SQLite and on PostgreSQL, and in
pages of some kinds of events (`eventlog.log_pages`)."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from contexts.settings import Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import PARTITIONS, EventEnvelope
from eventlog.log_pages import Kinds, LogPage, page_source
from eventlog.stores import Services, build_services


@pytest.fixture
def stores(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.close()


def _envelopes(recorder: Any, context: str, after: int) -> list[EventEnvelope]:
    envelopes: list[EventEnvelope] = recorder.select_envelopes(context, after, 100)
    return envelopes


def test_events_read_back_as_plain_json_envelopes_in_position_order(stores: Services) -> None:
    ctx = CommandContext(correlation_id="corr-1", causation_id="cause-1")
    users_start = stores.users.recorder.max_notification_id() or 0
    orders_start = stores.orders.recorder.max_notification_id() or 0
    user = (
        stores.application(UsersService)
        .register(ctx, "Ada", f"{UUID(int=users_start + 1).hex}@example.com")
        .id
    )
    order = stores.application(OrdersService).create_order(ctx, user, "EUR").id
    stores.application(OrdersService).add_line(ctx, order, "SKU-1", 2, Decimal("9.99"))

    [registered] = _envelopes(stores.users.recorder, "users", users_start)
    assert registered.event_type == "Registered"
    assert registered.aggregate_type == "UserProfile"
    assert registered.aggregate_id == user
    assert registered.data == {
        "name": "Ada",
        "email": f"{UUID(int=users_start + 1).hex}@example.com",
    }
    assert (registered.correlation_id, registered.causation_id) == ("corr-1", "cause-1")

    created, line = _envelopes(stores.orders.recorder, "orders", orders_start)
    assert created.data == {"user_id": str(user), "currency": "EUR"}
    assert line.data == {"sku": "SKU-1", "quantity": 2, "unit_price": "9.99"}
    assert (created.aggregate_version, line.aggregate_version) == (1, 2)
    assert created.position < line.position
    assert line.timestamp > created.timestamp
    assert line.message_id == f"orders-{line.position}"
    assert line.subject == f"es.orders.Order.LineAdded.p{line.partition:02d}"
    assert 0 <= line.partition < PARTITIONS
    assert EventEnvelope.from_json(line.to_json()) == line
    assert _envelopes(stores.orders.recorder, "orders", line.position) == []


def test_a_page_of_some_kinds_holds_those_events_and_says_how_far_the_read_went(
    stores: Services,
) -> None:
    users = stores.application(UsersService)
    start = stores.users.recorder.max_notification_id() or 0
    ada = users.register(CommandContext(), "Ada", f"{UUID(int=start + 1).hex}@example.com").id
    users.rename(CommandContext(), ada, "Ada King")
    users.deactivate(CommandContext(), ada)
    users.register(CommandContext(), "Bob", f"{UUID(int=start + 2).hex}@example.com")
    source, log = (
        page_source(stores.users.recorder),
        _envelopes(stores.users.recorder, "users", start),
    )
    deactivations = frozenset({("UserProfile", "Deactivated")})

    def page(after: int, limit: int, kinds: Kinds) -> LogPage:
        return source.select_page("users", after, limit, kinds)

    assert page(start, 100, deactivations) == LogPage([log[2]], log[-1].position, full=False)
    assert page(start, 2, deactivations) == LogPage([], log[1].position, full=True)
    assert page(start, 3, deactivations) == LogPage([log[2]], log[2].position, full=True)
    assert page(start, 4, frozenset()) == LogPage([], log[-1].position, full=True)
    assert page(log[-1].position, 100, deactivations) == LogPage([], log[-1].position, False)
    assert page(start, 3, None) == LogPage(log[:3], log[2].position, full=True)
    assert page(start, 100, None) == LogPage(log, log[-1].position, full=False)
