"""docs/config.md's table of services says what `sidecar/services.py` does: which live settings
each service takes."""

import re
from pathlib import Path

from contexts.deployment import deployments
from sidecar.services import BREAKERS, RATE_LIMITS, service_settings, services

CONFIG_DOC = Path(__file__).parents[2] / "docs" / "config.md"
GROUPS = {
    "log level": ("log_level",),
    "feature flags": ("feature_flags",),
    "breaker thresholds": BREAKERS,
    "rate limits": RATE_LIMITS,
}
"""The words of the table's third column, and the settings each stands for."""


def _services_table() -> dict[str, set[str]]:
    """Each service the table names, and the live settings it says the service takes."""
    section = CONFIG_DOC.read_text().split("## The services", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        names, _model, taken, _sidecar = (cell.strip() for cell in row.strip("|").split("|"))
        live = {setting for word in taken.split(", ") for setting in GROUPS[word]}
        for name in re.findall(r"`([^`]+)`", names):
            for service in _expanded(name):
                table[service] = live
    return table


def _expanded(name: str) -> list[str]:
    """`write-<context>` stands for every context's write service, `relay-<context>` its relay."""
    if name == "write-<context>":
        return [d.write_service for d in deployments()]
    if name == "relay-<context>":
        return [d.relay_service for d in deployments()]
    return [name]


def test_the_table_names_every_service_and_the_live_settings_it_takes() -> None:
    table = _services_table()
    assert set(table) == set(services())
    for service, live in table.items():
        assert live == set(service_settings(service).live), service
