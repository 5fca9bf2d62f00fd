"""Prometheus metrics of the write API: requests by route and status, and their latency
(`runtime.http.request_metrics`), the group commits of each event store, and the parked jobs
of the stores whose jobs it runs."""

import logging
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from eventlog.group_commit import GroupCommitter
from eventlog.parked_jobs import ParkedJobs
from runtime.http.request_metrics import RequestMetrics, metrics_endpoint

__all__ = ["GroupCommitCollector", "ParkedJobsCollector", "RequestMetrics", "metrics_endpoint"]

log = logging.getLogger("strata.write_api")


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


class ParkedJobsCollector:
    """`strata_jobs_parked{context,kind}`: the jobs parked now, counted in each store when
    /metrics is scraped (so never stale; every process running a store's jobs shows the same
    figure). A kind with none parked shows 0."""

    def __init__(self, stores: Mapping[str, ParkedJobs], kinds: Mapping[str, list[str]]) -> None:
        self._stores = stores
        self._kinds = kinds
        """Context -> the kinds of its jobs."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "strata_jobs_parked",
            "Jobs parked now, needing a person (replay jobs list | retry).",
            labels=["context", "kind"],
        )
        for context, store in self._stores.items():
            try:
                counts = store.parked_job_counts()
            except Exception as error:  # noqa: BLE001 - a scrape without the figure, not a 500
                log.warning("strata_jobs_parked of %s not counted: %s", context, error)
                continue
            for kind in sorted({*self._kinds.get(context, []), *counts}):
                gauge.add_metric([context, kind], counts.get(kind, 0))
        yield gauge

    def describe(self) -> Iterator[Metric]:
        """Registered without a collect at registration time (no store read then)."""
        yield GaugeMetricFamily("strata_jobs_parked", "", labels=["context", "kind"])
