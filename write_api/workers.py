"""The job pollers of the contexts a write service serves (their `workers`), for its lifetime:
one per kind of job, woken by the context's own commits, with a short poll for the jobs other
processes write and for the ones that come due."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

from prometheus_client import CollectorRegistry

from contexts.registry import Registry, WorkerEnvironment
from eventlog.jobs import Clock, JobPoller, JobStore
from eventlog.stores import Services
from runtime.auth.tokens import TokenSource
from runtime.live_settings import LiveSettings
from runtime.resilience import breaker_metrics


def _waking(poller: JobPoller) -> Callable[[str], None]:
    """A commit listener: a commit of the context may have left a job due now."""

    def wake(_committed_in: str) -> None:
        poller.wake()

    return wake


@asynccontextmanager
async def running_workers(
    live: LiveSettings,
    services: Services,
    contexts: Registry,
    metrics: CollectorRegistry,
    tokens: TokenSource,
    clock: Clock | None = None,
) -> AsyncIterator[list[JobPoller]]:
    """A poller per kind of job of each context, its handler built from the live settings;
    `tokens` give the handlers this process's service token, `clock` says when a job is due
    (tests move it by hand to reach a deadline)."""
    served = {service.name: service for service in services.all()}
    environment = WorkerEnvironment(served, live.current, breaker_metrics(metrics), live, tokens)
    pollers = []
    for context in contexts:
        application = served[context.name]
        for worker in context.workers:
            handle = worker.handler(application, environment)
            store = cast(JobStore, application.recorder)
            poller = JobPoller(
                store, worker.kind, handle, clock=clock, concurrency=live.current.job_concurrency
            )
            application.commit_listeners.append(_waking(poller))
            pollers.append(poller.start())
    try:
        yield pollers
    finally:
        await asyncio.gather(*(asyncio.to_thread(poller.stop) for poller in pollers))
