"""The fulfilment context (issue 9): the OrderFulfilment saga, which takes a placed order through
payment and shipping, compensating in reverse when a step fails or times out.

It follows the orders', payments' and shipping's events (`reactions`: one saga input per event,
once), and leaves two kinds of durable jobs (`workers`): the commands it sends the participants
(the dispatcher, which hands their refusals back to the saga) and its deadlines (which time a
step out).
"""

import httpx

from contexts.fulfilment import endpoints
from contexts.fulfilment.dispatch import (
    HttpParticipants,
    InProcessParticipants,
    RoutedParticipants,
    dispatcher,
)
from contexts.fulfilment.domain import OrderFulfilment
from contexts.fulfilment.service import COMMAND_JOB, DEADLINE_JOB, FOLLOWED, FulfilmentService
from contexts.registry import BoundedContext, JobHandler, Worker, WorkerEnvironment
from domain.service import CommandService
from eventlog.envelope import EventEnvelope
from eventlog.reactions import Reaction
from projections.models.fulfilments import Fulfilments
from read_api import fulfilment_endpoints

PARTICIPANT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def take_event(fulfilment: CommandService, event: EventEnvelope) -> None:
    assert isinstance(fulfilment, FulfilmentService)
    fulfilment.take_event(event)


def send_commands(fulfilment: CommandService, environment: WorkerEnvironment) -> JobHandler:
    assert isinstance(fulfilment, FulfilmentService)
    served = environment.served
    local = InProcessParticipants(served)
    remote_names = [name for name in FOLLOWED if name not in served]
    if not remote_names:  # every participant is served here: no HTTP client to build
        return dispatcher(local, fulfilment.record_refusal)
    urls = {name: url for name in remote_names if (url := environment.settings.write_url(name))}
    client = httpx.Client(timeout=PARTICIPANT_TIMEOUT)
    remote = HttpParticipants(urls, client, environment.tokens)
    return dispatcher(RoutedParticipants(local, set(served), remote), fulfilment.record_refusal)


def fire_deadlines(fulfilment: CommandService, environment: WorkerEnvironment) -> JobHandler:
    assert isinstance(fulfilment, FulfilmentService)
    return fulfilment.fire_deadline


FULFILMENT = BoundedContext(
    name="fulfilment",
    application=FulfilmentService,
    aggregates=(OrderFulfilment,),
    router=endpoints.router,
    reactions=tuple(Reaction(upstream, "saga", take_event) for upstream in FOLLOWED),
    workers=(Worker(COMMAND_JOB, send_commands), Worker(DEADLINE_JOB, fire_deadlines)),
    projections=(Fulfilments,),
    read_router=fulfilment_endpoints.router,
)
