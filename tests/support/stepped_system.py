"""The whole system in one process, as the embedded default composes it, but with nothing running
on its own: the test runs each part a step at a time, on a clock it moves by hand.

The write API serves every context (requests through a `TestClient`). The saga's intake of the
orders', payments' and shipping's logs (its reactions) and the job pollers of every context (the
saga's commands and deadlines, the participants' provider calls) are built as the write API
builds them, but not started: `step(part)` runs one catch-up or one claim. The participants call
the provider simulators through a `SimulatedNetwork`.

One `ManualClock` is the process's time: the pollers' due times, the event timestamps the saga's
deadlines are counted from, and the circuit breakers' recovery. It moves a millisecond per step
and otherwise only when the test moves it, so a deadline passes, a backoff ends and a breaker
half-opens exactly when the test says. The participants' and the saga's handlers are built as
the registry's workers build them, but the providers' clients are given the network; the
dispatcher sends every command in process (every participant is served here).

`crash` drops every object of the process and builds them again from the same stores, as a
kill -9 and a restart would; the `crash_*` methods first kill it at a chosen point.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import cast
from unittest import mock

import httpx
import purgatory.domain.model
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from contexts.fulfilment import FULFILMENT, fire_deadlines, send_commands
from contexts.fulfilment.service import COMMAND_JOB, DEADLINE_JOB, FulfilmentService
from contexts.payments.provider import HttpPaymentProvider
from contexts.payments.service import PAYMENT_PROVIDER_JOBS, PaymentsService
from contexts.payments.worker import PaymentsWorker
from contexts.registered import REGISTRY
from contexts.registry import JobHandler, Registry, WorkerEnvironment
from contexts.settings import Settings
from contexts.shipping.carrier import HttpCarrier
from contexts.shipping.service import CARRIER_JOBS, ShippingService
from contexts.shipping.worker import ShippingWorker
from domain.ports import Job
from domain.service import CommandService
from eventlog.envelope import EventEnvelope
from eventlog.jobs import JobPoller, JobStore, ManualClock
from eventlog.reactions import Reaction
from eventlog.replica_feeds import StoreTail
from eventlog.stores import react_to_log
from runtime.auth.tokens import NoToken
from runtime.live_settings import LiveSettings
from runtime.resilience import BreakerMetrics
from tests.support.api import services
from tests.support.auth import OPERATOR
from tests.support.simulated_network import Crash, SimulatedNetwork
from write_api.app import create_app

QUIET = Registry(*(replace(context, workers=(), reactions=()) for context in REGISTRY))
"""The registered contexts, without the threads of their job pollers and reactions."""
SAGA_INTAKE = tuple(f"saga<-{reaction.upstream}" for reaction in FULFILMENT.reactions)
JOB_KINDS = tuple(worker.kind for context in REGISTRY for worker in context.workers)
PARTS = SAGA_INTAKE + JOB_KINDS
"""What `step` runs: the saga's intake of each followed context, and each kind of job."""
STEP_TIME = timedelta(milliseconds=1)


@contextmanager
def the_process_clock(clock: ManualClock) -> Iterator[None]:
    """Make `clock` the time of events and of circuit breakers (the job pollers take it as an
    argument), for as long as the block runs."""
    breaker_time = SimpleNamespace(time=lambda: clock.now().timestamp())
    with (
        mock.patch("eventsourcing.domain.datetime_now_with_tzinfo", clock.now),
        mock.patch.object(purgatory.domain.model, "time", breaker_time),
    ):
        yield


class SteppedSystem:
    def __init__(self, settings: Settings, network: SimulatedNetwork, clock: ManualClock) -> None:
        self.settings = settings
        self.network = network
        self.clock = clock
        self._process = ExitStack()
        self._start()

    # -- the process -------------------------------------------------------------------------

    def _start(self) -> None:
        self.client = self._process.enter_context(
            TestClient(create_app(self.settings, contexts=QUIET), headers=OPERATOR)
        )
        self.services = services(self.client)
        self._intake = {
            f"saga<-{reaction.upstream}": self._saga_intake(reaction)
            for reaction in FULFILMENT.reactions
        }
        self._handlers = self._job_handlers()
        self._pollers = {
            kind: self._poller(kind, handle) for kind, handle in self._handlers.items()
        }

    def crash(self) -> None:
        """Drop the process's objects, and build them again from the same stores."""
        self.stop()
        self._process = ExitStack()
        self._start()

    def stop(self) -> None:
        self._process.close()

    @property
    def fulfilment(self) -> FulfilmentService:
        return cast(FulfilmentService, self.services.fulfilment)

    def _saga_intake(self, reaction: Reaction) -> StoreTail:
        return react_to_log(self.fulfilment, reaction, self.services[reaction.upstream])

    def _job_handlers(self) -> dict[str, JobHandler]:
        served = {service.name: service for service in self.services.all()}
        metrics = BreakerMetrics(CollectorRegistry())
        live = LiveSettings(self.settings)
        environment = WorkerEnvironment(served, self.settings, metrics, live, NoToken())
        handlers = {
            COMMAND_JOB: send_commands(self.fulfilment, environment),  # all in process here
            DEADLINE_JOB: fire_deadlines(self.fulfilment, environment),
        }
        http = httpx.Client(transport=self.network)
        self._process.callback(http.close)
        provider = HttpPaymentProvider.from_settings(self.settings, http, metrics)
        carrier = HttpCarrier.from_settings(self.settings, http, metrics)
        payments = cast(PaymentsService, self.services.payments)
        shipping = cast(ShippingService, self.services.shipping)
        handlers[PAYMENT_PROVIDER_JOBS] = PaymentsWorker(payments, provider).handle
        handlers[CARRIER_JOBS] = ShippingWorker(shipping, carrier).handle
        return handlers

    def _poller(self, kind: str, handle: JobHandler, batch: int = 16) -> JobPoller:
        store = cast(JobStore, self.services[self._context_of(kind)].recorder)
        return JobPoller(store, kind, handle, clock=self.clock, batch=batch)

    @staticmethod
    def _context_of(kind: str) -> str:
        return next(c.name for c in REGISTRY for worker in c.workers if worker.kind == kind)

    # -- steps -------------------------------------------------------------------------------

    def step(self, part: str) -> int:
        """Run one part once: how much it did (events taken in, or jobs claimed). Each step
        takes a millisecond of the clock: events stamped in one instant are stamped a
        microsecond apart (`EventSourcedAggregate`), so the jobs they start come due just after
        it."""
        self.clock.advance(STEP_TIME)
        if part in self._intake:
            tail = self._intake[part]
            before = tail.intake.checkpoint().position
            return tail.catch_up() - before
        return self._pollers[part].run_once()

    def run_until_idle(self, max_rounds: int = 200) -> None:
        """Run every part until none has anything to do at this instant."""
        for _ in range(max_rounds):
            if sum(self.step(part) for part in PARTS) == 0:
                return
        raise AssertionError(f"still busy after {max_rounds} rounds of every part")

    def next_due(self) -> tuple[timedelta, str] | None:
        """How long until the next job is due, and its kind; None if no job is left."""
        due = [(at, kind) for kind, poller in self._pollers.items() if (at := self._due(poller))]
        if not due:
            return None
        at, kind = min(due)
        return at - self.clock.now(), kind

    def _due(self, poller: JobPoller) -> datetime | None:
        store = cast(JobStore, self.services[self._context_of(poller.kind)].recorder)
        return store.next_due(poller.kind)

    def let_time_pass(self, jumps: int) -> bool:
        """Run everything due, then move the clock to the next due job, `jumps` times over;
        True once no job is left."""
        for _ in range(jumps):
            self.run_until_idle()
            due = self.next_due()
            if due is None:
                return True
            self.clock.advance(max(due[0], timedelta(0)) + timedelta(seconds=1))
        return False

    def settle(self, max_jumps: int = 100) -> None:
        """Run until no job is left."""
        if not self.let_time_pass(max_jumps):
            raise AssertionError(f"a job is still due after {max_jumps} moves of the clock")

    # -- kills at chosen points --------------------------------------------------------------

    def crash_in_job(self, kind: str, *, after_handling: bool) -> bool:
        """Claim one due job of `kind` and die before its handler runs, or once it returned
        (its outcome committed, the job not yet removed). False if no job was due."""
        handle = self._handlers[kind]

        def die(job: Job) -> None:
            if after_handling:
                handle(job)
            raise Crash(f"killed {'after' if after_handling else 'before'} handling {job.key}")

        return self._dies(lambda: self._poller(kind, die, batch=1).run_once())

    def crash_in_provider_call(self, host: str, kind: str) -> bool:
        """Run the due jobs of `kind`; the first call to `host` is performed by the provider,
        and the process dies before the answer arrives. False if no call was made."""
        self.network.crash_in_call.add(host)
        try:
            return self._dies(self._pollers[kind].run_once)
        finally:
            self.network.crash_in_call.discard(host)

    def crash_in_saga_intake(self, upstream: str) -> bool:
        """Take the upstream's next event into the saga, and die before the intake's checkpoint
        moves past it. False if there was no event to take."""
        reaction = next(r for r in FULFILMENT.reactions if r.upstream == upstream)

        def react_then_die(application: CommandService, event: EventEnvelope) -> None:
            reaction.react(application, event)
            raise Crash(f"killed after the saga took {upstream} event in")

        dying = replace(reaction, react=react_then_die)
        return self._dies(lambda: self._saga_intake(dying).catch_up())

    def _dies(self, run: Callable[[], object]) -> bool:
        try:
            run()
        except Crash:
            self.crash()
            return True
        return False
