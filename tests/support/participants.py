"""For the tests of the payments and shipping participants: a provider and a carrier in process
that answer each idempotency key once (as the simulators do), the jobs a store holds for an
aggregate (read back from its committed events), a client of a participant's endpoints, and the
check of one state transition."""

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from fastapi.testclient import TestClient

from contexts.participant import AwaitingProvider, ParticipantService, ParticipantWorker
from contexts.payments.ports import Authorization, ProviderUnavailable
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.shipping.ports import Booking, CarrierUnavailable
from domain.errors import DomainError
from domain.ports import Job, JobChanges
from tests.support.aggregates import stored_events
from tests.support.as_of import typed_state
from tests.support.auth import OPERATOR
from tests.unit.test_as_of_snapshots import through_the_store
from write_api.app import create_app

A = TypeVar("A", bound=AwaitingProvider)


class OncePerKey:
    """Records each call under its idempotency key and answers a repeated key with the first
    answer; while `down`, raises instead (the outcome unknown to the caller)."""

    unavailable: type[Exception] = Exception

    def __init__(self) -> None:
        self.down = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers: dict[str, Any] = {}

    def once(self, key: str, request: tuple[Any, ...], answer: Callable[[], Any]) -> Any:
        self.calls.append((key, request))
        if self.down:
            raise self.unavailable(f"{type(self).__name__} is down")
        if key not in self.answers:
            self.answers[key] = answer()
        return self.answers[key]

    def performed(self, operation: str) -> list[str]:
        """The keys of the operations performed (answered), once each."""
        return [key for key in self.answers if key.endswith(f":{operation}")]


PROVIDERS_WORDS = [
    ("card\u0000declined\u202eby the bank", "card declined by the bank"),
    ("\u200b\u0000 ", None),  # nothing visible: the context's own words
    ("x" * 2000, "x" * 500),
]
"""What a provider may write in a reason, and what is recorded (the text rule would refuse it)."""


class FakeProvider(OncePerKey):
    """A payment provider that declines the amounts in `declines`."""

    unavailable = ProviderUnavailable

    def __init__(self, declines: tuple[Decimal, ...] = ()) -> None:
        super().__init__()
        self.declines = declines
        self.reason = "insufficient funds"
        """What a decline says: a real provider's may hold anything."""

    def authorize(self, key: str, amount: Decimal, currency: str) -> Authorization:
        def answer() -> Authorization:
            if amount in self.declines:
                return Authorization(approved=False, reason=self.reason)
            return Authorization(approved=True, reference=f"auth-{len(self.answers) + 1}")

        result: Authorization = self.once(key, ("authorize", amount, currency), answer)
        return result

    def capture(self, key: str, reference: str, amount: Decimal, currency: str) -> None:
        self.once(key, ("capture", reference, amount, currency), lambda: None)

    def void(self, key: str, reference: str) -> None:
        self.once(key, ("void", reference), lambda: None)

    def refund(self, key: str, reference: str, amount: Decimal, currency: str) -> None:
        self.once(key, ("refund", reference, amount, currency), lambda: None)


class FakeCarrier(OncePerKey):
    """A carrier that refuses every booking while `refusing`."""

    unavailable = CarrierUnavailable

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.reason = "no carrier serves the address"
        """What a refusal says: a real carrier's may hold anything."""

    def schedule(self, key: str, shipment_id: UUID, order_id: UUID) -> Booking:
        def answer() -> Booking:
            if self.refusing:
                return Booking(accepted=False, reason=self.reason)
            return Booking(accepted=True, carrier="Parcelforce", reference=f"PF-{shipment_id}")

        result: Booking = self.once(key, ("schedule", shipment_id, order_id), answer)
        return result

    def dispatch(self, key: str, reference: str) -> None:
        self.once(key, ("dispatch", reference), lambda: None)

    def cancel(self, key: str, reference: str) -> None:
        self.once(key, ("cancel", reference), lambda: None)


def open_jobs(
    changes: Callable[[Sequence[Aggregate.Event]], JobChanges], events: Iterable[Aggregate.Event]
) -> dict[tuple[str, str], Job]:
    """The jobs a store holds after these events, committed one command at a time with the job
    changes they make, by (kind, key)."""
    table: dict[tuple[str, str], Job] = {}
    for event in events:
        made = changes([event])
        table.update({(job.kind, job.key): job for job in made.start})
        for done in made.finish:
            table.pop(done, None)
    return table


class Jobs:
    """The jobs of one aggregate as the store keeps them: those its committed events started and
    did not finish (each command's events are committed with their job changes), less those the
    job poller dropped once handled."""

    def __init__(self, service: ParticipantService) -> None:
        self.service = service
        self.dropped: list[tuple[str, str]] = []

    def of(self, aggregate_id: UUID) -> list[Job]:
        table = open_jobs(
            self.service.operation_jobs.changes, stored_events(self.service, aggregate_id)
        )
        return [job for done, job in table.items() if done not in self.dropped]

    def keys(self, aggregate_id: UUID) -> list[str]:
        return [job.key for job in self.of(aggregate_id)]


class ParticipantApi:
    """A participant context of one test client: its endpoints at `path`, its service, its
    jobs, and its worker, run as the job poller runs it."""

    def __init__(
        self,
        client: TestClient,
        path: str,
        service: ParticipantService,
        worker: ParticipantWorker[Any],
    ) -> None:
        self.client = client
        self.path = path
        self.service = service
        self.jobs = Jobs(service)
        self.worker = worker

    def ask(self, aggregate_id: str, action: str, status: int = 200) -> Any:
        response = self.client.post(f"{self.path}/{aggregate_id}/{action}")
        assert response.status_code == status, response.text
        return response.json()

    def run_jobs(self, aggregate_id: str) -> None:
        """Run the aggregate's open jobs, as its job poller would once they are due."""
        for job in self.jobs.of(UUID(aggregate_id)):
            self.run(job)

    def run(self, job: Job) -> None:
        """As the poller does: a job handled without an error is gone (if its outcome's commit
        did not finish it, the poller drops it); one that raised stays for a later attempt."""
        self.worker.handle(job)
        self.jobs.dropped.append((job.kind, job.key))

    def state(self, aggregate_id: str) -> Any:
        response = self.client.get(f"{self.path}/{aggregate_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def position(self) -> int:
        """The store's last position: unchanged means nothing was appended."""
        return self.service.recorder.max_notification_id() or 0


def check_transition(
    aggregate: AwaitingProvider,
    command: Callable[[Any], None],
    source: StrEnum,
    target: StrEnum,
    done: Collection[StrEnum],
) -> None:
    """Run `command` on an aggregate in any status: from `source` it moves to `target` with one
    event; in a status of `done` it does nothing; anywhere else it is refused with a DomainError
    naming both statuses, and nothing changes."""
    status = aggregate.status
    if status is source:
        command(aggregate)
        assert aggregate.status is target
        assert len(aggregate.collect_events()) == 1
        return
    if status in done:
        command(aggregate)
    else:
        with pytest.raises(DomainError) as caught:
            command(aggregate)
        noun = type(aggregate).__name__.lower()
        assert f"the {noun} is {status}, it must be {source}" in str(caught.value)
    assert aggregate.status is status
    assert aggregate.collect_events() == []


def brought_to(aggregate: A, steps: Sequence[Callable[[A], None]]) -> A:
    """The aggregate after these commands, their events still pending."""
    for step in steps:
        step(aggregate)
    return aggregate


def assert_restored_from_snapshot(service: ParticipantService, aggregate: AwaitingProvider) -> None:
    """The aggregate comes back from its stored snapshot with every attribute of the same type."""
    restored = through_the_store(service, aggregate)
    assert isinstance(restored, type(aggregate))
    assert typed_state(restored) == typed_state(aggregate)
    assert restored.status is aggregate.status


def client_without_workers(settings: Any) -> Iterator[TestClient]:
    """A client of every context whose job pollers do not run: the test runs the jobs itself,
    with a fake provider (`ParticipantApi.run_jobs`)."""
    registry = Registry(*(replace(context, workers=()) for context in REGISTRY))
    with TestClient(create_app(settings, contexts=registry), headers=OPERATOR) as client:
        yield client
