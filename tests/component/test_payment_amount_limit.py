"""The saga's authorize command for more than the system handles (`domain.values.MAX_AMOUNT`),
on the embedded store and on PostgreSQL.

Sent in process, it skips the HTTP grammar of `POST /payments/{id}/authorize`: the domain refuses
it, so no payment is stored and no provider job opened (the provider would refuse the amount, and
the job would be tried again for good), and the dispatcher hands the refusal to the saga and its
job ends, as for any refusal.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment.dispatch import CommandRefused, InProcessParticipants, dispatcher
from contexts.fulfilment.service import COMMAND_JOB
from contexts.payments.service import PaymentsService
from contexts.settings import Settings
from domain.ports import Job
from tests.support.api import services
from tests.support.participants import Jobs, client_without_workers

REFUSAL = "amount must be at most 999999999999.99, got 1000000000000.00"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    yield from client_without_workers(settings)


def authorize_job(payment_id: UUID, amount: str) -> Job:
    """The `fulfilment-command` job the saga writes for its authorize step."""
    saga_id = uuid4()
    body = {"order_id": str(uuid4()), "user_id": str(uuid4()), "amount": amount, "currency": "EUR"}
    return Job(
        COMMAND_JOB,
        f"{saga_id}:authorize:0",
        datetime.now(UTC),
        {
            "saga_id": str(saga_id),
            "step": "authorize",
            "target": "payments",
            "action": "authorize",
            "aggregate_id": str(payment_id),
            "body": body,
        },
    )


def test_an_authorize_command_for_more_than_can_be_paid_is_refused_and_stores_nothing(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    payments = services(client).application(PaymentsService)
    participants = InProcessParticipants({"payments": payments})
    payment_id = uuid4()
    job = authorize_job(payment_id, "1000000000000.00")
    before = payments.recorder.max_notification_id() or 0

    with pytest.raises(CommandRefused, match=REFUSAL):
        participants.send(job.key, "payments", "authorize", payment_id, job.payload["body"])
    refusals: list[tuple[str, str]] = []
    send = dispatcher(participants, lambda key, reason: refusals.append((key, reason)))
    with caplog.at_level(logging.WARNING, logger="strata.fulfilment.dispatch"):
        send(job)  # returns: the poller drops the job, it is not sent again
    assert REFUSAL in caplog.text
    [(key, reason)] = refusals
    assert key == job.key and REFUSAL in reason

    assert (payments.recorder.max_notification_id() or 0) == before
    assert client.get(f"/payments/{payment_id}").status_code == 404
    assert Jobs(payments).of(payment_id) == []

    # A cent less, the largest amount, is requested as usual.
    payment_id = uuid4()
    send(authorize_job(payment_id, "999999999999.99"))
    assert len(refusals) == 1
    state = client.get(f"/payments/{payment_id}").json()
    assert (state["status"], state["amount"]) == ("requested", "999999999999.99")
    assert Jobs(payments).keys(payment_id) == [f"{payment_id}:authorize"]
