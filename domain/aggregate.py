"""The base aggregate every context builds on."""

from datetime import timedelta
from typing import Any

from eventsourcing.domain import Aggregate

ONE_MICROSECOND = timedelta(microseconds=1)


class EventSourcedAggregate(Aggregate):
    """An aggregate whose event timestamps strictly increase with its version.

    The library stamps events with the writer's clock, which can step backwards (NTP, or two
    replicas with skewed clocks). Clamping each new event to one microsecond after the previous
    one keeps "events with timestamp <= T" a prefix of the version order, which is what makes
    point-in-time replay exact.
    """

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        if kwargs.get("timestamp") is None:
            now = event_class.create_timestamp()
            kwargs["timestamp"] = max(now, self.modified_on + ONE_MICROSECOND)
        super().trigger_event(event_class, **kwargs)
