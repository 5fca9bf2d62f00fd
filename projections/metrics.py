"""Prometheus metrics of the projector: throughput, lag (events and seconds), dead letters.

Only what the projector consumes now is exported: when a rebuild's swap retires a version, its
series go (a frozen checkpoint of a retired version would read as a stalled projection), and a
projector that went back to standby exports no checkpoint, lag or attachment gauges.
"""

import contextlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from projections.consumers import Consumer
from projections.engine import Outcome
from projections.model import Projection

_LABELS = ("projection", "version", "context")


class ProjectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "strata_projection_events_applied",
            "Events applied to a read model.",
            _LABELS,
            registry=r,
        )
        self.parked = Counter(
            "strata_projection_events_parked",
            "Events parked as dead letters (failing, or behind a failing one of their aggregate).",
            _LABELS,
            registry=r,
        )
        self.duplicates = Counter(
            "strata_projection_duplicates",
            "Messages skipped because the checkpoint already covered them.",
            _LABELS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "strata_projection_batch_seconds",
            "Seconds to apply and commit one batch.",
            ("projection", "version"),
            registry=r,
        )
        self.checkpoint = Gauge(
            "strata_projection_checkpoint_position",
            "Last position applied (the context's event store position).",
            _LABELS,
            registry=r,
        )
        self.lag_events = Gauge(
            "strata_projection_lag_events",
            "Position of the stream's last message minus the checkpoint.",
            _LABELS,
            registry=r,
        )
        self.lag_seconds = Gauge(
            "strata_projection_lag_seconds",
            "Age of the oldest event not applied yet: now minus the commit time of the first"
            " event after the checkpoint (0 when caught up).",
            _LABELS,
            registry=r,
        )
        self.feed_lag_events = Gauge(
            "strata_projection_feed_lag_events",
            "The most events any projection of a context's feed is behind.",
            ("feed", "context"),
            registry=r,
        )
        self.feed_lag_seconds = Gauge(
            "strata_projection_feed_lag_seconds",
            "The oldest event not yet applied by every projection of a context's feed, in seconds.",
            ("feed", "context"),
            registry=r,
        )
        self.dead_letters = Gauge(
            "strata_projection_dead_letters",
            "Parked events waiting to be retried or skipped.",
            ("projection", "version"),
            registry=r,
        )
        self.attached = Gauge(
            "strata_projection_consumer_attached",
            "1 while the consumer is attached and consuming.",
            _LABELS,
            registry=r,
        )

        self._consumer_labels: dict[tuple[str, str], tuple[str, str, str]] = {}
        """(projection, context) → the labels last exported for it (its version may change)."""
        self._dead_letter_labels: set[tuple[str, str]] = set()
        self._feeds: set[tuple[str, str]] = set()

    @property
    def _consumer_gauges(self) -> tuple[Gauge, ...]:
        return (self.checkpoint, self.lag_events, self.lag_seconds, self.attached)

    def _labels(self, runner: Consumer) -> tuple[str, str, str]:
        p = runner.engine.projection
        labels = (p.name, str(p.version), runner.context)
        previous = self._consumer_labels.get((p.name, runner.context))
        self._consumer_labels[(p.name, runner.context)] = labels
        if previous is not None and previous != labels:
            self._retire(previous)
        return labels

    def _retire(self, labels: tuple[str, str, str]) -> None:
        """A version no longer consumed: drop its series."""
        _remove((*self._consumer_gauges, self.applied, self.parked, self.duplicates), labels)
        if not any(kept[:2] == labels[:2] for kept in self._consumer_labels.values()):
            _remove((self.batch_seconds,), labels[:2])

    def forget_consumers(self) -> None:
        """The projector stopped consuming (standby): drop every consumer's gauges."""
        for labels in self._consumer_labels.values():
            _remove(self._consumer_gauges, labels)
        self._consumer_labels.clear()
        _remove((self.feed_lag_events, self.feed_lag_seconds), *self._feeds)
        self._feeds.clear()

    def observe_batch(self, runner: Consumer, outcome: Outcome, seconds: float) -> None:
        labels = self._labels(runner)
        self.applied.labels(*labels).inc(outcome.applied)
        self.parked.labels(*labels).inc(outcome.parked)
        self.duplicates.labels(*labels).inc(outcome.duplicates)
        self.batch_seconds.labels(*labels[:2]).observe(seconds)
        self.checkpoint.labels(*labels).set(runner.checkpoint.position)

    def observe_lag(
        self,
        runner: Consumer,
        last_position: int,
        oldest_unapplied: datetime | None = None,
        now: datetime | None = None,
    ) -> tuple[int, float]:
        """Export how far `runner` is behind the stream's last position, in events and in
        seconds: the age of `oldest_unapplied`, the commit time of the first event after its
        checkpoint. Without that time (a checkpoint backfilled from the event store carries no
        stream sequence) the age of the last applied event stands in, an upper bound; NaN when
        nothing was applied either. Returns (events, seconds)."""
        labels = self._labels(runner)
        behind = max(0, last_position - runner.checkpoint.position)
        self.lag_events.labels(*labels).set(behind)
        self.checkpoint.labels(*labels).set(runner.checkpoint.position)
        self.attached.labels(*labels).set(1 if runner.attached else 0)
        since = oldest_unapplied or runner.last_event_time
        if behind == 0:
            seconds = 0.0
        elif since is None:
            seconds = float("nan")
        else:
            seconds = max(0.0, ((now or datetime.now(UTC)) - since).total_seconds())
        self.lag_seconds.labels(*labels).set(seconds)
        return behind, seconds

    def observe_feed_lag(self, feed: str, context: str, events: int, seconds: float) -> None:
        self._feeds.add((feed, context))
        self.feed_lag_events.labels(feed, context).set(events)
        self.feed_lag_seconds.labels(feed, context).set(seconds)

    def forget_feed(self, feed: str, context: str) -> None:
        """A worker gave a partition up: drop its feed's series."""
        self._feeds.discard((feed, context))
        _remove((self.feed_lag_events, self.feed_lag_seconds), (feed, context))

    def observe_partitions_lag(
        self, projection: Projection, context: str, events: int, seconds: float
    ) -> None:
        """A worker's lag of `projection` over the partitions it holds: the events not yet
        applied in them, and the age of the oldest (at most)."""
        labels = (projection.name, str(projection.version), context)
        self._consumer_labels[(projection.name, context)] = labels
        self.lag_events.labels(*labels).set(events)
        self.lag_seconds.labels(*labels).set(seconds)

    def observe_dead_letters(
        self, projections: Iterable[Projection], depth: Mapping[tuple[str, int], int]
    ) -> None:
        exported = set()
        for p in projections:
            self.dead_letters.labels(p.name, str(p.version)).set(depth.get((p.name, p.version), 0))
            exported.add((p.name, str(p.version)))
        _remove((self.dead_letters,), *(self._dead_letter_labels - exported))
        self._dead_letter_labels = exported


def _remove(metrics: Iterable[MetricWrapperBase], *label_sets: tuple[str, ...]) -> None:
    for metric in metrics:
        for labels in label_sets:
            with contextlib.suppress(KeyError):  # never exported
                metric.remove(*labels)
