"""The embedded mode's fan-out: tail the SQLite event stores inside the API process.

One thread per context polls `select_envelopes` on its store (SQLite cannot LISTEN) and applies
each page to every projection of that context in `<data_dir>/read.sqlite`, with the same
checkpoints and dead letters as the stack. The write side calls :meth:`EmbeddedFanout.wake`
after a commit for low lag; a short poll is the backstop.

Wiring (the write API's lifespan)::

    services = build_services(settings)
    fanout = start_embedded_fanout(settings, services)   # embedded mode only
    ...                                                  # after each successful command:
    fanout.wake()                                        #   (or wake("users") / wake("orders"))
    ...
    fanout.stop()                                        # before services.close()
"""

import logging
from collections.abc import Sequence

from contexts.settings import Settings
from eventlog.envelope import EnvelopeSource, envelope_source
from eventlog.stores import Services
from projections.admin import DeadLetterAdmin
from projections.catchup import catch_up
from projections.engine import Engine, RetryPolicy, Target
from projections.model import Projection
from projections.targets import following_targets
from readmodels.sql import READ_DATABASE, SQLiteDatabase
from runtime.polling import PollingThread

logger = logging.getLogger("strata.projections.embedded")

POLL_INTERVAL = 0.2


class Tailer:
    """One context's log, applied to its projections by a thread of its own."""

    def __init__(
        self,
        context: str,
        source: EnvelopeSource,
        engines: Sequence[Engine],
        *,
        page_size: int,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.context = context
        self._source = source
        self._engines = list(engines)
        self._page_size = page_size
        self._thread = PollingThread(
            f"fanout-{context}", self._catch_up, interval=poll_interval, log=logger
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._thread.wake()

    def stop(self) -> None:
        self._thread.stop()

    def _catch_up(self) -> None:
        catch_up(self._source, self.context, self._engines, page_size=self._page_size)


class EmbeddedFanout:
    """A handle on the running fan-out: wake it, inspect its dead letters, stop it."""

    def __init__(self, db: SQLiteDatabase, targets: Sequence[Target], tailers: Sequence[Tailer]):
        self.db = db
        self.targets = list(targets)
        self.dead_letters = DeadLetterAdmin(db, targets)
        self._tailers = {tailer.context: tailer for tailer in tailers}

    @property
    def contexts(self) -> tuple[str, ...]:
        """The contexts whose logs it tails: one tailer each."""
        return tuple(self._tailers)

    def wake(self, context: str | None = None) -> None:
        """New events were committed (in `context`, or in any): apply them now."""
        for name, tailer in self._tailers.items():
            if context is None or name == context:
                tailer.wake()

    def stop(self) -> None:
        for tailer in self._tailers.values():
            tailer.stop()
        self.db.close()


def start_embedded_fanout(
    settings: Settings,
    services: Services,
    projections: Sequence[Projection] | None = None,
    *,
    poll_interval: float = POLL_INTERVAL,
    policy: RetryPolicy | None = None,
) -> EmbeddedFanout:
    """Create the read database and the tables of `projections` (the registered contexts' by
    default), then start one tailer thread per context."""
    db = SQLiteDatabase(settings.data_dir / READ_DATABASE, busy_timeout=settings.db_lock_timeout)
    targets = following_targets(db, projections=projections)
    for target in targets:
        target.prepare()
    engines = [Engine(target, policy) for target in targets]
    tailers = [
        Tailer(
            service.name,
            envelope_source(service.recorder),
            [engine for engine in engines if service.name in engine.projection.contexts],
            page_size=settings.projector_batch_size,
            poll_interval=poll_interval,
        )
        for service in services.all()
    ]
    for tailer in tailers:
        tailer.start()
    return EmbeddedFanout(db, targets, tailers)
