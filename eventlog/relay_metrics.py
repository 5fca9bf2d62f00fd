"""The relay's Prometheus series (see :mod:`eventlog.relay`), all labelled with the context."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class RelayMetrics:
    """The relay's series, registered on the registry it is given."""

    def __init__(self, registry: CollectorRegistry, context: str) -> None:
        labels = ["context"]
        self.relayed = Counter(
            "strata_relay_events_relayed",
            "Events the relay stored in the stream (re-publishes the stream dropped excluded).",
            labels,
            registry=registry,
        ).labels(context)
        self.duplicates = Counter(
            "strata_relay_duplicates",
            "Re-published events the stream acknowledged as duplicates.",
            labels,
            registry=registry,
        ).labels(context)
        self.publish_retries = Counter(
            "strata_relay_publish_retries",
            "Pages sent again with the same message ids because no stream answered in time"
            " (no stream leader, as during an election, or NATS unreachable).",
            labels,
            registry=registry,
        ).labels(context)
        self.resyncs = Counter(
            "strata_relay_resyncs",
            "Times publishing failed and the relay re-read its resume point from the stream.",
            labels,
            registry=registry,
        ).labels(context)
        self.lag = Gauge(
            "strata_relay_lag_events",
            "Event store's last position minus the last position relayed.",
            labels,
            registry=registry,
        ).labels(context)
        self.last_publish = Gauge(
            "strata_relay_last_publish_timestamp_seconds",
            "Unix time of the relay's last acknowledged page.",
            labels,
            registry=registry,
        ).labels(context)
        self.active = Gauge(
            "strata_relay_active",
            "1 while this relay holds the store's relay lock and publishes, else 0.",
            labels,
            registry=registry,
        ).labels(context)
        self.halted = Gauge(
            "strata_relay_halted",
            "1 while publishing is halted because the stream does not continue this event store"
            " (another store's stream, or a message no relay wrote), else 0.",
            labels,
            registry=registry,
        ).labels(context)
