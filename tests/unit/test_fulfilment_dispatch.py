"""The saga's dispatcher over HTTP: which answers of a participant are a refusal (in whose words)
and which only say "not now", so that the command is sent again later."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from contexts.fulfilment.dispatch import (
    MAX_RETRY_AFTER,
    CommandRefused,
    HttpParticipants,
    ParticipantMisconfigured,
    ParticipantUnavailable,
    dispatcher,
)
from domain.ports import Job
from eventlog.jobs import RetryLater
from runtime.auth.tokens import NoToken

PROBLEM = "application/problem+json"


def answering(response: httpx.Response) -> HttpParticipants:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: response))
    return HttpParticipants({"shipping": "http://shipping"}, client, NoToken())


def send(participants: HttpParticipants) -> None:
    participants.send("saga:cancel_shipment:0", "shipping", "cancel", uuid4(), None)


def test_a_refusal_is_told_in_the_problems_detail() -> None:
    detail = "cannot cancel: the shipment is dispatching, it must be scheduled"
    problem = {"type": "/problems/rule-violated", "status": 409, "detail": detail}
    with pytest.raises(CommandRefused) as refused:
        send(answering(httpx.Response(409, json=problem, headers={"Content-Type": PROBLEM})))
    assert str(refused.value) == detail


def test_a_refusal_without_a_detail_is_told_by_its_status_and_body() -> None:
    response = httpx.Response(404, json={"status": 404}, headers={"Content-Type": PROBLEM})
    with pytest.raises(CommandRefused) as refused:
        send(answering(response))
    assert str(refused.value) == f"404 {response.text}"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(
            403, json={"detail": "needs shipping:write"}, headers={"Content-Type": PROBLEM}
        ),
        httpx.Response(404, text="Not Found"),
        httpx.Response(405, json={"detail": "Method Not Allowed"}),
        httpx.Response(302, headers={"Location": "/login"}),
    ],
)
def test_a_misconfigured_deployment_is_no_refusal(response: httpx.Response) -> None:
    """A scope the saga's account lacks, or an answer that is not the participant's: the job
    fails (retried, then parked), and the saga is never told the command was refused."""
    refusals: list[str] = []
    handle = dispatcher(answering(response), lambda key, reason: refusals.append(reason))
    payload = {"target": "shipping", "action": "cancel", "aggregate_id": str(uuid4()), "body": {}}
    with pytest.raises(ParticipantMisconfigured, match=f"shipping answered {response.status_code}"):
        handle(Job("fulfilment-command", "saga:cancel_shipment:0", datetime.now(UTC), payload))
    assert refusals == []


def test_an_accepted_command_is_neither_refused_nor_retried() -> None:
    send(answering(httpx.Response(202, json={"id": str(uuid4()), "version": 2, "position": 9})))


@pytest.mark.parametrize("status", [401, 408, 429, 500, 503])
def test_answers_that_say_not_now_are_sent_again_later(status: int) -> None:
    with pytest.raises(ParticipantUnavailable):
        send(answering(httpx.Response(status, json={"detail": "slow down"})))


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        ("7", timedelta(seconds=7)),
        (" 30 ", timedelta(seconds=30)),
        ("86400", MAX_RETRY_AFTER),  # the saga's own deadlines come first
        ("Fri, 31 Dec 1999 23:59:59 GMT", None),
        ("-1", None),
        ("1e3", None),
        ("+5", None),
    ],
)
def test_a_not_now_is_sent_again_after_its_retry_after_at_most_a_minute(
    retry_after: str, delay: timedelta | None
) -> None:
    response = httpx.Response(429, json={"detail": "over the limit"})
    response.headers["Retry-After"] = retry_after
    handle = dispatcher(answering(response), lambda key, reason: None)
    payload = {"target": "shipping", "action": "cancel", "aggregate_id": str(uuid4()), "body": {}}
    with pytest.raises(RetryLater) as later:
        handle(Job("fulfilment-command", "saga:cancel_shipment:0", datetime.now(UTC), payload))
    assert later.value.delay == delay
