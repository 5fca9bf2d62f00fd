"""The payments endpoints and worker, on the embedded store and on PostgreSQL.

A command records intent and answers at once; the worker then calls the provider (here an
in-process one answering each idempotency key once) for each job the intent opened.
"""

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment.dispatch import HttpParticipants
from contexts.payments.service import DECLINED, PAYMENT_PROVIDER_JOBS, PaymentsService
from contexts.payments.worker import PaymentsWorker
from contexts.settings import Settings
from eventlog.jobs import RetryLater
from runtime.auth.tokens import StaticToken
from tests.support.api import assert_problem, services
from tests.support.auth import IDENTITY, SAGA_CLIENT, SAGA_SCOPE
from tests.support.participants import (
    PROVIDERS_WORDS,
    FakeProvider,
    ParticipantApi,
    client_without_workers,
)

DECLINED_AMOUNT = Decimal("13.13")


class Payments(ParticipantApi):
    def __init__(self, client: TestClient) -> None:
        self.provider = FakeProvider(declines=(DECLINED_AMOUNT,))
        payments = services(client).application(PaymentsService)
        super().__init__(client, "/payments", payments, PaymentsWorker(payments, self.provider))

    def authorize(self, payment: str, *, amount: str = "12.30", **body: Any) -> Any:
        fields = {"order_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())} | body
        return self.client.post(
            f"/payments/{payment}/authorize",
            json={**fields, "amount": amount, "currency": "EUR"},
        )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    yield from client_without_workers(settings)


@pytest.fixture
def payments(client: TestClient) -> Payments:
    return Payments(client)


def new_id() -> str:
    return str(uuid.uuid4())


def test_an_authorization_is_recorded_at_once_and_answered_by_the_worker(
    payments: Payments,
) -> None:
    payment = new_id()
    response = payments.authorize(payment, amount="12.3")
    assert response.status_code == 201, response.text
    assert response.json()["id"] == payment
    assert response.json()["position"].startswith("payments:")
    assert response.headers["Location"] == f"/payments/{payment}"
    state = payments.state(payment)
    assert (state["status"], state["amount"], state["currency"]) == ("requested", "12.30", "EUR")
    assert payments.provider.calls == []  # nobody waited on the provider
    assert payments.jobs.keys(UUID(payment)) == [f"{payment}:authorize"]

    payments.run_jobs(payment)

    state = payments.state(payment)
    assert (state["status"], state["reference"], state["version"]) == ("authorized", "auth-1", 2)
    assert payments.jobs.of(UUID(payment)) == []
    assert payments.provider.calls == [
        (f"{payment}:authorize", ("authorize", Decimal("12.30"), "EUR"))
    ]


def test_captured_then_refunded_money_moves_once_each_way_and_frees_the_order(
    payments: Payments,
) -> None:
    payment, order = new_id(), new_id()
    payments.authorize(payment, order_id=order)
    payments.run_jobs(payment)

    for action, pending, done in [
        ("capture", "capturing", "captured"),
        ("refund", "refunding", "refunded"),
    ]:
        payments.ask(payment, action)
        payments.ask(payment, action)  # sent again (a retrying saga): nothing more
        assert payments.state(payment)["status"] == pending
        assert payments.jobs.keys(UUID(payment)) == [f"{payment}:{action}"]
        payments.run_jobs(payment)
        assert payments.state(payment)["status"] == done

    assert payments.provider.performed("capture") == [f"{payment}:capture"]
    assert payments.provider.performed("refund") == [f"{payment}:refund"]
    assert payments.state(payment)["version"] == 6
    assert payments.authorize(new_id(), order_id=order).status_code == 201


def test_a_voided_authorization_frees_the_order_for_another_payment(payments: Payments) -> None:
    payment, order = new_id(), new_id()
    payments.authorize(payment, order_id=order)
    payments.run_jobs(payment)
    payments.ask(payment, "void")
    payments.run_jobs(payment)

    assert payments.state(payment)["status"] == "voided"
    assert payments.provider.performed("void") == [f"{payment}:void"]
    assert payments.authorize(new_id(), order_id=order).status_code == 201


def test_a_decline_ends_the_payment_with_its_reason(payments: Payments) -> None:
    payment, order = new_id(), new_id()
    payments.authorize(payment, order_id=order, amount=str(DECLINED_AMOUNT))
    payments.run_jobs(payment)

    state = payments.state(payment)
    assert (state["status"], state["decline_reason"]) == ("declined", "insufficient funds")
    assert_problem(payments.client.post(f"/payments/{payment}/capture"), 409, "is declined")
    assert payments.authorize(new_id(), order_id=order).status_code == 201


@pytest.mark.parametrize(("written", "recorded"), PROVIDERS_WORDS)
def test_a_decline_s_reason_is_made_legible_not_refused(
    payments: Payments, written: str, recorded: str | None
) -> None:
    payments.provider.reason = written
    payment = new_id()
    payments.authorize(payment, amount=str(DECLINED_AMOUNT))
    payments.run_jobs(payment)

    state = payments.state(payment)
    assert (state["status"], state["decline_reason"]) == ("declined", recorded or DECLINED)
    assert payments.jobs.of(UUID(payment)) == []


def test_an_order_has_one_live_payment_at_a_time(payments: Payments) -> None:
    order = new_id()
    first = new_id()
    payments.authorize(first, order_id=order)
    before = payments.position()

    second = payments.authorize(new_id(), order_id=order)

    body = assert_problem(second, 409, f"order {order} has a live payment already, {first}")
    assert body["type"] == "/problems/value-taken"
    assert payments.position() == before


def test_asked_again_an_authorization_answers_the_payment_as_it_is(payments: Payments) -> None:
    payment, order, user = new_id(), new_id(), new_id()
    first = payments.authorize(payment, order_id=order, user_id=user)
    payments.run_jobs(payment)
    before = payments.position()

    again = payments.authorize(payment, order_id=order, user_id=user)

    assert again.status_code == 201
    assert (again.json()["id"], again.json()["version"]) == (payment, 2)
    assert again.json()["position"] != first.json()["position"]
    assert payments.position() == before
    changed = payments.authorize(payment, order_id=order, user_id=user, amount="99.00")
    assert_problem(changed, 409, "a payment's request cannot change")


@pytest.mark.parametrize(
    ("done", "action", "message"),
    [
        ([], "capture", "the payment is requested, it must be authorized"),
        (["run"], "refund", "an uncaptured payment is voided instead"),
        (["run", "capture", "run"], "void", "a captured payment is refunded instead"),
        (["run", "void"], "capture", "the payment is voiding, it must be authorized"),
    ],
)
def test_invalid_intents_are_409_and_write_nothing(
    payments: Payments, done: list[str], action: str, message: str
) -> None:
    payment = new_id()
    payments.authorize(payment)
    for step in done:
        if step == "run":
            payments.run_jobs(payment)
        else:
            payments.ask(payment, step)
    before = payments.position()

    assert_problem(payments.client.post(f"/payments/{payment}/{action}"), 409, message)
    assert payments.position() == before


def test_while_the_provider_is_down_the_job_stays_and_its_retry_sends_the_same_key(
    payments: Payments,
) -> None:
    payment = new_id()
    payments.authorize(payment)
    payments.provider.down = True

    with pytest.raises(RetryLater):
        payments.run_jobs(payment)
    assert payments.state(payment)["status"] == "requested"
    assert payments.jobs.keys(UUID(payment)) == [f"{payment}:authorize"]

    payments.provider.down = False
    payments.run_jobs(payment)
    assert payments.state(payment)["status"] == "authorized"
    assert [key for key, _ in payments.provider.calls] == [f"{payment}:authorize"] * 2


def test_a_stale_job_is_handled_without_calling_the_provider(payments: Payments) -> None:
    payment = new_id()
    payments.authorize(payment)
    [authorize] = payments.jobs.of(UUID(payment))
    assert (authorize.kind, authorize.key) == (PAYMENT_PROVIDER_JOBS, f"{payment}:authorize")
    payments.run_jobs(payment)
    before = payments.position()

    payments.worker.handle(authorize)  # delivered again, e.g. after its lease ran out

    assert len(payments.provider.calls) == 1
    assert payments.position() == before
    assert payments.state(payment)["status"] == "authorized"


def test_retried_commands_with_an_idempotency_key_replay_and_if_match_guards(
    payments: Payments,
) -> None:
    payment = new_id()
    payments.authorize(payment)
    payments.run_jobs(payment)
    key = {"Idempotency-Key": f"capture-{payment}"}
    first = payments.client.post(f"/payments/{payment}/capture", headers=key)
    again = payments.client.post(f"/payments/{payment}/capture", headers=key)

    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    stale = payments.client.post(f"/payments/{payment}/void", headers={"If-Match": '"2"'})
    assert_problem(stale, 412, "is at version 3, not at version 2")


def test_the_sagas_command_resent_over_http_is_recognized_whoever_else_used_its_key(
    payments: Payments,
) -> None:
    """The saga's key is its service account's own: resent (after a crash), its command is
    the same one; the operator's command with that key is another one, on its own payment."""
    saga = HttpParticipants(
        {"payments": str(payments.client.base_url)},
        payments.client,
        StaticToken(IDENTITY.token(SAGA_CLIENT, ["service"], SAGA_SCOPE)),
    )
    payment, other = new_id(), new_id()
    key = f"{uuid.uuid4()}:authorize:0"
    body = {"order_id": new_id(), "user_id": new_id(), "amount": "12.30", "currency": "EUR"}
    saga.send(key, "payments", "authorize", UUID(payment), body)
    after_first = payments.position()

    another_order = {**body, "order_id": new_id()}
    operator = payments.client.post(
        f"/payments/{other}/authorize", json=another_order, headers={"Idempotency-Key": key}
    )
    assert operator.status_code == 201, operator.text
    assert operator.json()["id"] == other and "Idempotent-Replayed" not in operator.headers
    after_operator = payments.position()
    assert after_operator > after_first

    saga.send(key, "payments", "authorize", UUID(payment), body)  # no CommandRefused
    assert payments.position() == after_operator  # nothing appended: the same command
    assert payments.state(payment)["version"] == payments.state(other)["version"] == 1


def test_the_state_as_of_a_time_is_the_fold_of_the_events_until_then(payments: Payments) -> None:
    payment = new_id()
    payments.authorize(payment)
    requested_at = payments.state(payment)["modified_on"]
    payments.run_jobs(payment)

    then = payments.client.get(f"/payments/{payment}", params={"as_of": requested_at})
    assert (then.json()["status"], then.headers["ETag"]) == ("requested", '"1"')
    assert payments.client.get(f"/payments/{payment}").headers["ETag"] == '"2"'
    before = payments.client.get(f"/payments/{payment}", params={"as_of": "2000-01-01T00:00:00Z"})
    assert_problem(before, 404, "did not exist yet")
    assert_problem(payments.client.get(f"/payments/{new_id()}"), 404, "no Payment with id")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1.001"}, "body.amount"),
        ({"amount": "-1"}, "body.amount"),
        ({"amount": "1e3"}, "body.amount"),
        ({"amount": 12.3}, "body.amount"),
        ({"amount": " 1"}, "body.amount"),
        ({"currency": "XYZ"}, "body.currency"),
        ({"currency": "EURO"}, "body.currency"),
        ({"currency": "XXX"}, "body.currency"),
        ({"currency": "XAG"}, "body.currency"),
        ({"currency": "BOV"}, "body.currency"),
        ({"currency": "JPY", "amount": "1.50"}, "JPY has no minor unit"),
        ({"order_id": "{2e31a84a-2ade-4076-83c6-62ab586bccdb}"}, "body.order_id"),
        ({"user_id": "2e31a84a2ade407683c662ab586bccdb"}, "body.user_id"),
        ({"note": "x"}, "body.note"),
    ],
)
def test_malformed_authorizations_are_422_naming_the_field_and_write_nothing(
    payments: Payments, change: dict[str, object], field: str
) -> None:
    body = {"order_id": new_id(), "user_id": new_id(), "amount": "1.00", "currency": "EUR"}
    before = payments.position()

    response = payments.client.post(f"/payments/{new_id()}/authorize", json=body | change)

    assert_problem(response, 422, field)
    assert payments.position() == before


def test_a_payment_id_in_the_path_is_a_canonical_uuid(payments: Payments) -> None:
    response = payments.client.post("/payments/2e31a84a2ade407683c662ab586bccdb/capture")
    assert_problem(response, 422, "path.payment_id")
