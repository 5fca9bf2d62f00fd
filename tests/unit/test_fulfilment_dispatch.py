"""The saga's dispatcher over HTTP: which answers of a participant are a refusal (in whose words)
and which only say "not now", so that the command is sent again later."""

from uuid import uuid4

import httpx
import pytest

from contexts.fulfilment.dispatch import CommandRefused, HttpParticipants, ParticipantUnavailable
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


@pytest.mark.parametrize(
    "response",
    [httpx.Response(404, text="Not Found"), httpx.Response(422, json=["no detail"])],
)
def test_a_refusal_without_a_detail_is_told_by_its_status_and_body(
    response: httpx.Response,
) -> None:
    with pytest.raises(CommandRefused) as refused:
        send(answering(response))
    assert str(refused.value) == f"{response.status_code} {response.text}"


@pytest.mark.parametrize("status", [401, 408, 429, 500, 503])
def test_answers_that_say_not_now_are_sent_again_later(status: int) -> None:
    with pytest.raises(ParticipantUnavailable):
        send(answering(httpx.Response(status, json={"detail": "slow down"})))
