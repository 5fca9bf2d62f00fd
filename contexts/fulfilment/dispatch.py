"""The dispatcher of the saga's commands: the handler of its `fulfilment-command` jobs.

A command goes to the participant's write service, over HTTP when it runs elsewhere (the stack)
or to its application when it is served in this process, always with the command's key as the
`Idempotency-Key`: a command resent after a crash, a timeout or a lost answer is applied once.
A participant that cannot be reached raises `ParticipantUnavailable`: the job poller sends the
command again later, with backoff, for as long as the outage lasts (`RetryLater`). A participant
that refuses the command (a 4xx: the payment was captured already, the shipment is being
dispatched) is not asked again: the refusal, in the participant's words, goes to the saga at
once (`FulfilmentService.record_refusal`), which decides on it as its deadline for that step
would, without waiting for it: it compensates a forward step and parks a compensation for a
person (docs/fulfilment.md). Any other failure is retried a few times, then the job is parked
(`eventlog.jobs.MAX_ATTEMPTS`, `replay jobs`), and the step's deadline decides.

Over HTTP a command carries the process's service token (`runtime.auth.tokens.TokenSource`; the
saga's account has the scopes `payments:write shipping:write orders:write`). Without a token
yet, or answered 401 (a token the participant cannot verify yet, as during a key rotation), 408
or 429 (a rate limit), the command is sent again later, like one that found the participant
down, after its `Retry-After` if it gives one (at most a minute). Any other 4xx in problem
details is a refusal, in the words of the problem's `detail`, except a 403: the saga's account
lacks a scope, which is the deployment's fault, not the participant's "no". That, and a 4xx that
is not problem details (a proxy's page: the URL does not lead to the participant), raise
`ParticipantMisconfigured`: retried, then parked for a person (`replay jobs retry` once the
deployment is mended), never taken as a refusal that would compensate the order.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import httpx

from domain.errors import DomainError
from domain.ports import Job
from domain.service import CommandContext, CommandService
from eventlog.jobs import RetryLater
from runtime.auth.tokens import TokenSource
from runtime.http.header_fields import retry_after_seconds
from runtime.http.openapi import PROBLEM_JSON

log = logging.getLogger("strata.fulfilment.dispatch")


class ParticipantUnavailable(Exception):
    """The participant did not answer (or answered 5xx, or "not now"): send the command again
    later, after `retry_after` if it said when."""

    def __init__(self, reason: str, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class CommandRefused(Exception):
    """The participant refused the command: sending it again would not change that."""


class ParticipantMisconfigured(Exception):
    """The participant's answer says the deployment is wrong (a scope the saga's account lacks,
    a URL that does not lead to the participant), not that the command was refused."""


class Participants(Protocol):
    def send(self, key: str, target: str, action: str, aggregate_id: UUID, body: Any) -> None: ...


Refusals = Callable[[str, str], None]
"""Where a refusal goes: called with the command's key and the participant's reason."""


def dispatcher(participants: Participants, refusals: Refusals) -> Callable[[Job], None]:
    def handle(job: Job) -> None:
        payload = job.payload
        try:
            participants.send(
                job.key,
                str(payload["target"]),
                str(payload["action"]),
                UUID(str(payload["aggregate_id"])),
                payload["body"],
            )
        except ParticipantUnavailable as unavailable:
            raise RetryLater(str(unavailable), unavailable.retry_after) from unavailable
        except CommandRefused as refused:
            log.warning("%s refused %s: %s", payload["target"], job.key, refused)
            refusals(job.key, str(refused))

    return handle


PATHS: Mapping[tuple[str, str], str] = {
    ("payments", "authorize"): "/payments/{id}/authorize",
    ("payments", "capture"): "/payments/{id}/capture",
    ("payments", "void"): "/payments/{id}/void",
    ("payments", "refund"): "/payments/{id}/refund",
    ("shipping", "schedule"): "/shipments/{id}/schedule",
    ("shipping", "dispatch"): "/shipments/{id}/dispatch",
    ("shipping", "cancel"): "/shipments/{id}/cancel",
    ("orders", "pay"): "/orders/{id}/pay",
    ("orders", "ship"): "/orders/{id}/ship",
    ("orders", "cancel"): "/orders/{id}/cancel",
}


MAX_RETRY_AFTER = timedelta(seconds=60)
FORBIDDEN = 403
NOT_NOW = frozenset({401, 408, 429})
"""4xx answers that say "not now" rather than "no": a token the participant cannot verify yet,
a request that took too long, a rate limit. The command is sent again later."""


class HttpParticipants:
    """The participants' write services, by context name -> base URL."""

    def __init__(self, urls: Mapping[str, str], client: httpx.Client, tokens: TokenSource) -> None:
        self._urls = urls
        self._client = client
        self._tokens = tokens

    def _headers(self, key: str) -> dict[str, str]:
        headers = {"Idempotency-Key": key, "X-Causation-Id": key}
        token = self._tokens.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def send(self, key: str, target: str, action: str, aggregate_id: UUID, body: Any) -> None:
        base = self._urls.get(target)
        if base is None:
            raise ParticipantUnavailable(
                f"no URL of {target}'s write service: set STRATA_WRITE_URLS"
            )
        url = base.rstrip("/") + PATHS[(target, action)].format(id=aggregate_id)
        try:
            response = self._client.post(url, json=body or None, headers=self._headers(key))
        except httpx.HTTPError as error:
            raise ParticipantUnavailable(f"{target}: {error}") from error
        if response.status_code >= 500 or response.status_code in NOT_NOW:
            raise ParticipantUnavailable(
                f"{target} answered {response.status_code}", _retry_after(response)
            )
        if response.is_success:
            return
        if response.status_code == FORBIDDEN or not _is_problem(response):
            raise ParticipantMisconfigured(
                f"{target} answered {_answer(response)} to {action}: check the saga's scopes"
                " and STRATA_WRITE_URLS"
            )
        raise CommandRefused(_refusal_reason(response))


def _retry_after(response: httpx.Response) -> timedelta | None:
    """When the participant asked to be called again (a rate limit's or an overload's 429 or
    503), at most `MAX_RETRY_AFTER` away: a deadline of the saga's own may come sooner."""
    seconds = retry_after_seconds(response.headers.get("retry-after"))
    return None if seconds is None else min(timedelta(seconds=seconds), MAX_RETRY_AFTER)


def _is_problem(response: httpx.Response) -> bool:
    media_type: str = response.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == PROBLEM_JSON


def _answer(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:300]}"


def _refusal_reason(response: httpx.Response) -> str:
    """The participant's words: its problem's `detail`, else the start of what it answered."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    detail = problem.get("detail") if isinstance(problem, dict) else None
    if isinstance(detail, str) and detail.strip():
        return detail
    return _answer(response)


Call = Callable[[Any, CommandContext, UUID, Mapping[str, str]], object]

CALLS: Mapping[tuple[str, str], Call] = {
    ("payments", "authorize"): lambda app, ctx, id_, body: app.request_authorization(
        ctx,
        id_,
        UUID(body["order_id"]),
        UUID(body["user_id"]),
        Decimal(body["amount"]),
        body["currency"],
    ),
    ("payments", "capture"): lambda app, ctx, id_, _: app.request_capture(ctx, id_),
    ("payments", "void"): lambda app, ctx, id_, _: app.request_void(ctx, id_),
    ("payments", "refund"): lambda app, ctx, id_, _: app.request_refund(ctx, id_),
    ("shipping", "schedule"): lambda app, ctx, id_, body: app.request_shipment(
        ctx, id_, UUID(body["order_id"]), UUID(body["user_id"])
    ),
    ("shipping", "dispatch"): lambda app, ctx, id_, _: app.request_dispatch(ctx, id_),
    ("shipping", "cancel"): lambda app, ctx, id_, _: app.request_cancellation(ctx, id_),
    ("orders", "pay"): lambda app, ctx, id_, _: app.mark_paid(ctx, id_),
    ("orders", "ship"): lambda app, ctx, id_, _: app.mark_shipped(ctx, id_),
    ("orders", "cancel"): lambda app, ctx, id_, body: app.cancel(ctx, id_, body["reason"]),
}


class InProcessParticipants:
    """The participants' applications served in this process, by context name."""

    def __init__(self, applications: Mapping[str, CommandService]) -> None:
        self._applications = applications

    def send(self, key: str, target: str, action: str, aggregate_id: UUID, body: Any) -> None:
        ctx = CommandContext(idempotency_key=key, fingerprint=key, causation_id=key)
        try:
            CALLS[(target, action)](self._applications[target], ctx, aggregate_id, body or {})
        except DomainError as refused:
            raise CommandRefused(str(refused)) from refused


class RoutedParticipants:
    """Each command to the application in this process if there is one, else over HTTP."""

    def __init__(self, local: InProcessParticipants, local_names: set[str], remote: Participants):
        self._local, self._names, self._remote = local, local_names, remote

    def send(self, key: str, target: str, action: str, aggregate_id: UUID, body: Any) -> None:
        chosen = self._local if target in self._names else self._remote
        chosen.send(key, target, action, aggregate_id, body)
