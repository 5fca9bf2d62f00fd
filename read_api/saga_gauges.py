"""`strata_fulfilment_parked`: the sagas parked now, counted in the `fulfilments` read model when
/metrics is scraped (a Prometheus collector, so the figure is never stale)."""

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from read_api.stores import ReadStores
from readmodels.catalog import ReadModel
from readmodels.fulfilment_catalog import FULFILMENTS

log = logging.getLogger("strata.read_api")


def parked_count(stores: ReadStores) -> int:
    """How many sagas are parked now (the `strata_fulfilment_parked` gauge)."""
    with stores.relational.reading() as tx:
        row = tx.query_one("SELECT count(*) FROM fulfilments WHERE status = 'parked'", [])
    return 0 if row is None else int(row[0])


class ParkedSagas(Collector):
    def __init__(self, stores: ReadStores) -> None:
        self._stores = stores

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "strata_fulfilment_parked",
            "Fulfilment sagas parked now (needing a person: replay sagas retry | resolve).",
        )
        try:
            gauge.add_metric([], parked_count(self._stores))
        except Exception as error:  # noqa: BLE001 - a scrape without the figure, not a 500
            log.warning("strata_fulfilment_parked not counted: %s", error)
            return []
        return [gauge]

    def describe(self) -> Iterable[Metric]:
        """Registered without a collect at registration time (no store read then)."""
        return [GaugeMetricFamily("strata_fulfilment_parked", "")]


def register_saga_gauges(
    registry: CollectorRegistry, stores: ReadStores, models: Iterable[ReadModel]
) -> None:
    """Add the fulfilment's gauges to the read API's metrics, if it serves `fulfilments`."""
    if FULFILMENTS in tuple(models):
        registry.register(ParkedSagas(stores))
