"""Folding an event store's log into read models directly, without the broker.

Used by the embedded fan-out (tailing the SQLite stores), by the JetStream runner when the
stream no longer holds what a checkpoint needs (backfill), and to rebuild read models from the
log (the "rebuild equals live" oracle).
"""

from collections.abc import Iterable, Mapping, Sequence

from eventlog.envelope import EnvelopeSource
from projections.engine import Engine, RetryPolicy, Target
from projections.model import Message

DEFAULT_PAGE_SIZE = 500


def catch_up(
    source: EnvelopeSource,
    context: str,
    engines: Sequence[Engine],
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    until: int | None = None,
    partition: int | None = None,
) -> int:
    """Apply the context's log after the lowest checkpoint of `engines` up to its end (or to
    position `until`), one page at a time; each engine skips what it already has. Parked events
    whose retry is due are retried first. With `partition` (a worker's engines), only that
    partition's events. Returns the number of events read."""
    if not engines:
        return 0
    for engine in engines:
        if engine.retries_due(context):
            engine.retry_due(context)
    positions = {engine: engine.target.checkpoint(context).position for engine in engines}
    read = 0
    while True:
        page = source.select_envelopes(context, min(positions.values()), page_size)
        last_page = len(page) < page_size
        if until is not None:
            last_page = last_page or bool(page and page[-1].position >= until)
            page = [envelope for envelope in page if envelope.position <= until]
        if not page:
            return read
        after = page[-1].position
        if partition is not None:
            page = [envelope for envelope in page if envelope.partition == partition]
            # The others' events are not for these engines: read on after them.
            positions = {engine: max(p, after) for engine, p in positions.items()}
            if not page:
                if last_page:
                    return read
                continue
        messages = [Message(envelope) for envelope in page]
        for engine in engines:
            outcome = engine.handle(context, messages)
            if outcome.checkpoint is not None:
                positions[engine] = max(positions[engine], outcome.checkpoint.position)
        read += len(page)
        if last_page:
            return read


def project_log(
    sources: Mapping[str, EnvelopeSource],
    targets: Iterable[Target],
    *,
    until: Mapping[str, int] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    policy: RetryPolicy | None = None,
) -> None:
    """Fold each context's whole log (up to `until[context]`) into `targets`, from their
    current checkpoints: on empty targets, a clean re-projection."""
    engines = [Engine(target, policy) for target in targets]
    for engine in engines:
        engine.target.prepare()
    for context, source in sources.items():
        subscribed = [e for e in engines if context in e.projection.contexts]
        limit = None if until is None else until.get(context)
        catch_up(source, context, subscribed, page_size=page_size, until=limit)
