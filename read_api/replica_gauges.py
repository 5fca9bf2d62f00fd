"""The read replica on /metrics: `strata_read_replica_up`, `…_lag_seconds`, `…_lag_bytes` and
`…_replay_paused`, asked of the replica when /metrics is scraped (a Prometheus collector, so the
figures are never stale). Registered only when the read API serves from a replica."""

import logging
from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from read_api.stores.replica import ReplicaProbe

log = logging.getLogger("strata.read_api")

GAUGES = {
    "strata_read_replica_up": "1 when the read replica answers, else 0.",
    "strata_read_replica_lag_seconds": "Age of the last commit the read replica replayed, while"
    " it has received WAL it has not replayed (0 when it has replayed all it received).",
    "strata_read_replica_lag_bytes": "WAL the read replica received and has not replayed yet.",
    "strata_read_replica_replay_paused": "1 while replay on the read replica is paused.",
}


class ReplicaGauges(Collector):
    def __init__(self, probe: ReplicaProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterable[Metric]:
        up, lag_seconds, lag_bytes, paused = self._families()
        try:
            status = self._probe.status()
        except Exception as error:  # noqa: BLE001 - a scrape saying "down", not a 500
            log.warning("read replica status not read: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        lag_seconds.add_metric([], status.lag_seconds)
        lag_bytes.add_metric([], status.lag_bytes)
        paused.add_metric([], int(status.replay_paused))
        return [up, lag_seconds, lag_bytes, paused]

    def describe(self) -> Iterable[Metric]:
        """Registered without a collect at registration time (no replica read then)."""
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, text) for name, text in GAUGES.items()]
