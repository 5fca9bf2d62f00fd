"""The provider simulators inside the all-in-one process: with no provider URL configured, the
payment-provider and carrier simulators are mounted on the embedded app (under /simulators) and
the participants are pointed at them, so the embedded default fulfils orders out of the box. A URL
set explicitly (STRATA_PAYMENT_PROVIDER_URL, STRATA_CARRIER_URL) is used instead. Their ledgers
are SQLite files in the data directory, beside the event stores: `simulators/<name>.sqlite`."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from contexts.settings import Settings
from simulators import carrier, payment_provider
from simulators.ledger import Ledger, LedgerUnusable

PREFIX = "/simulators"
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not bound


@dataclass(frozen=True)
class EmbeddedSimulator:
    name: str
    url_field: str
    create_app: Callable[[Path], FastAPI]

    @property
    def path(self) -> str:
        return f"{PREFIX}/{self.name}"

    def ledger(self, data_dir: Path) -> Path:
        return data_dir / "simulators" / f"{self.name}.sqlite"


SIMULATORS = (
    EmbeddedSimulator("payment-provider", "payment_provider_url", payment_provider.create_app),
    EmbeddedSimulator("carrier", "carrier_url", carrier.create_app),
)


def in_process(settings: Settings) -> list[EmbeddedSimulator]:
    """The simulators to run in the process: those whose URL the settings leave unset."""
    return [s for s in SIMULATORS if s.url_field not in settings.model_fields_set]


def own_url(settings: Settings) -> str:
    """The process's own base URL, as a client on this machine reaches it."""
    host = "127.0.0.1" if settings.host in ANY_ADDRESS else settings.host
    return base_url(host, settings.port)


def base_url(host: str, port: int) -> str:
    """`http://host:port`, an IPv6 address in brackets (`http://[::1]:8000`)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def pointed_at_them(settings: Settings) -> Settings:
    """The settings with each unset provider URL pointing at its simulator in the process."""
    base = own_url(settings)
    urls = {s.url_field: f"{base}{s.path}" for s in in_process(settings)}
    return settings.model_copy(update=urls)


def mount(app: FastAPI, simulators: list[EmbeddedSimulator], data_dir: Path) -> None:
    for simulator in simulators:
        app.mount(simulator.path, simulator.create_app(simulator.ledger(data_dir)))


def check_ledgers(simulators: list[EmbeddedSimulator], data_dir: Path) -> None:
    """A start check (`runtime.http.preflight`): each ledger opens (made if missing), as the
    simulators' own processes check theirs at start, or `ValueError` saying which does not."""
    for simulator in simulators:
        try:
            Ledger(simulator.ledger(data_dir)).check()
        except LedgerUnusable as error:
            raise ValueError(f"STRATA_DATA_DIR: {error}") from None
