"""The base aggregate every context builds on, and the snapshot it is restored from."""

from datetime import timedelta
from typing import Any

from eventsourcing.domain import Aggregate, Snapshot

ONE_MICROSECOND = timedelta(microseconds=1)


class AggregateSnapshot(Snapshot):
    """The library's snapshot (the aggregate's attributes at one version), plus a restore hook.

    JSON gives some values back as their base type (a `StrEnum` member comes back as a plain
    `str`), so after rebuilding the aggregate from the stored attributes the snapshot lets it
    restore its own types. The stored topic is `domain.aggregate:AggregateSnapshot`: keep it.
    """

    def mutate(self, _: None) -> Any:
        aggregate = super().mutate(_)
        if isinstance(aggregate, EventSourcedAggregate):
            aggregate.restore_types()
        return aggregate


class EventSourcedAggregate(Aggregate):
    """An aggregate whose event timestamps strictly increase with its version.

    The library stamps events with the writer's clock, which can step backwards (NTP, or two
    replicas with skewed clocks). Clamping each new event to one microsecond after the previous
    one keeps "events with timestamp <= T" a prefix of the version order, which is what makes
    point-in-time replay exact.
    """

    Snapshot = AggregateSnapshot

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        if kwargs.get("timestamp") is None:
            now = event_class.create_timestamp()
            kwargs["timestamp"] = max(now, self.modified_on + ONE_MICROSECOND)
        super().trigger_event(event_class, **kwargs)

    def restore_types(self) -> None:
        """Give back their own types to attributes a snapshot stored as plain JSON values."""
