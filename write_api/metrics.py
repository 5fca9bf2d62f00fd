"""Prometheus metrics of the write API: requests by route and status, and their latency
(`runtime.http.request_metrics`), and the group commits of each event store."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from eventlog.group_commit import GroupCommitter
from runtime.http.request_metrics import RequestMetrics, metrics_endpoint

__all__ = ["GroupCommitCollector", "RequestMetrics", "metrics_endpoint"]


class GroupCommitCollector:
    """Units of work and shared transactions per event store, read from the committers."""

    def __init__(self, committers: dict[str, GroupCommitter]) -> None:
        self._committers = committers

    def collect(self) -> Iterator[Metric]:
        transactions = CounterMetricFamily(
            "strata_group_commit_transactions", "Shared transactions attempted", labels=["store"]
        )
        units = CounterMetricFamily(
            "strata_group_commit_units", "Commands committed through group commit", labels=["store"]
        )
        for store, committer in self._committers.items():
            transactions.add_metric([store], committer.transactions)
            units.add_metric([store], committer.units)
        yield transactions
        yield units
