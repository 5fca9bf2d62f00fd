"""compose.yaml runs each registered context as a service of its own (issue 8): a write service
with only its own event store, its relay as a sidecar, ports by registration order, and a one-shot
`provision` job creating every database before any project service starts. The same checks run on
the file generated for a registry with one more context (`tests/support/notes_context.py`)."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from contexts.deployment import SIMULATORS, ContextDeployment, deployments, live_services
from contexts.orders import ORDERS
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from contexts.users import USERS
from eventlog.provision import stack_database_urls
from runtime.settings import settings_model
from tests.support.compose import (
    COMPLETED,
    ONE_SHOT_RESTARTS,
    REGISTRIES,
    clear_settings,
    compose_for,
    context_of,
    database_urls_of,
    dependencies,
    environment_of,
    first_word,
    load_compose,
    words_of,
)
from tests.support.notes_context import NOTES


@pytest.fixture(params=list(REGISTRIES), ids=list(REGISTRIES))
def registry(request: pytest.FixtureRequest) -> Registry:
    return REGISTRIES[request.param]


def test_the_per_context_services_are_those_of_the_registered_contexts(registry: Registry) -> None:
    services = compose_for(registry)["services"]
    per_context = {name for name, service in services.items() if context_of(service)}

    expected = {s for d in deployments(registry) for s in (d.write_service, d.relay_service)}
    assert per_context == expected


def test_each_context_is_a_write_service_of_its_own_on_its_port(registry: Registry) -> None:
    services = compose_for(registry)["services"]
    for d in deployments(registry):
        service = services[d.write_service]
        environment = environment_of(service)
        port = environment["STRATA_PORT"]

        assert words_of(service["command"]) == ["strata-write-api", "--context", d.name]
        assert int(port) == d.write_port()
        assert service["ports"] == [f"{port}:{port}"]
        assert_only_its_own_store(d, service)
        assert environment["STRATA_NATS_URL"].startswith("nats://nats:")
        assert environment["STRATA_HOST"] == "0.0.0.0"
        assert dependencies(service)["provision"] == COMPLETED


def test_each_relay_is_a_sidecar_of_its_own_context_s_write_service(registry: Registry) -> None:
    services = compose_for(registry)["services"]
    for d in deployments(registry):
        relay = services[d.relay_service]

        assert words_of(relay["command"]) == ["strata-relay", "--context", d.name]
        assert relay["network_mode"] == f"service:{d.write_service}"
        assert int(environment_of(relay)["STRATA_RELAY_PORT"]) == d.relay_port()
        assert_only_its_own_store(d, relay)
        assert environment_of(relay)["STRATA_NATS_URL"].startswith("nats://nats:")
        assert dependencies(relay)[d.write_service] == "service_healthy"


def assert_only_its_own_store(d: ContextDeployment, service: Mapping[str, Any]) -> None:
    urls = database_urls_of(service)
    assert list(urls) == [d.context.database_url_variable]
    assert urls[d.context.database_url_variable].endswith(
        f"@postgres:5432/{d.context.database_name}"
    )


def test_the_ports_follow_the_registration_order() -> None:
    services = compose_for(Registry(USERS, ORDERS, NOTES))["services"]
    ports = {
        name: environment_of(service).get("STRATA_PORT")
        or environment_of(service).get("STRATA_RELAY_PORT")
        for name, service in services.items()
        if context_of(service)
    }

    assert ports == {
        "write-users": "8000",
        "relay-users": "8001",
        "write-orders": "8010",
        "relay-orders": "8011",
        "write-notes": "8020",
        "relay-notes": "8021",
    }


def test_provision_runs_once_after_postgres_and_every_project_service_waits_for_it() -> None:
    services = load_compose()["services"]
    provision = services["provision"]

    assert words_of(provision["command"]) == ["python", "-m", "eventlog.provision"]
    assert provision["restart"] in ONE_SHOT_RESTARTS
    assert dependencies(provision) == {"postgres": "service_healthy"}
    simulators = {s.service for s in SIMULATORS}  # stand-ins for the providers: no database
    for name, service in services.items():
        if "build" in service and name not in {"provision", *simulators}:
            assert dependencies(service).get("provision") == COMPLETED, name
    # postgres must be healthy before provision runs, so its check names no database it creates.
    check = [str(word) for word in services["postgres"]["healthcheck"]["test"]]
    created = {
        url.rsplit("/", 1)[1] for s in services.values() for url in database_urls_of(s).values()
    }
    assert check[check.index("-d") + 1] not in created


def test_provision_creates_every_database_the_services_use(monkeypatch: pytest.MonkeyPatch) -> None:
    services = load_compose()["services"]
    used = {url for service in services.values() for url in database_urls_of(service).values()}
    clear_settings(monkeypatch)
    for variable, value in environment_of(services["provision"]).items():
        monkeypatch.setenv(variable, value)

    assert set(stack_database_urls()) == used


def test_provision_reads_each_url_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """One context deployed alone: its database and the read models', no other."""
    clear_settings(monkeypatch)
    monkeypatch.setenv("STRATA_ORDERS_DATABASE_URL", "postgresql://pg/strata_orders")
    monkeypatch.setenv("STRATA_READ_DATABASE_URL", "postgresql://pg/strata_read")

    assert stack_database_urls() == ["postgresql://pg/strata_orders", "postgresql://pg/strata_read"]
    assert stack_database_urls(REGISTRY.with_(NOTES)) == stack_database_urls()
    monkeypatch.setenv("STRATA_NOTES_DATABASE_URL", "postgresql://pg/strata_notes")
    assert stack_database_urls(REGISTRY.with_(NOTES))[1] == "postgresql://pg/strata_notes"


def test_compose_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each service's environment is valid settings of the contexts it runs (one, or all)."""
    for service in load_compose()["services"].values():
        if "build" not in service:
            continue
        clear_settings(monkeypatch)
        for variable, value in environment_of(service).items():
            monkeypatch.setenv(variable, value)
        context = context_of(service)

        settings = settings_model((context,))() if context else Settings()

        command = first_word(service["command"])
        if command in {"strata-write-api", "strata-relay", "strata-projector"}:
            assert settings.mode == "stack", command  # the event stores are PostgreSQL
        if command in {"strata-projector", "strata-read-api"}:
            assert settings.read_database_url and settings.redis_url, command


def test_the_simulators_run_and_the_write_services_reach_them_and_each_other_by_name() -> None:
    services = load_compose()["services"]
    for simulator in SIMULATORS:
        command = words_of(services[simulator.service]["command"])
        assert command[0] == simulator.script
        assert command[command.index("--host") + 1] == "0.0.0.0"
    payments, shipping = services["write-payments"], services["write-shipping"]
    url = environment_of(payments)["STRATA_PAYMENT_PROVIDER_URL"]
    assert url == "http://payment-provider:8100"
    assert dependencies(payments)["payment-provider"] == "service_healthy"
    assert environment_of(shipping)["STRATA_CARRIER_URL"] == "http://carrier:8101"
    write_urls = environment_of(services["write-fulfilment"])["STRATA_WRITE_URLS"]
    assert dict(entry.split("=") for entry in write_urls.split(",")) == {
        d.name: f"http://{d.write_service}:{d.write_port()}"
        for d in deployments()
        if d.name != "fulfilment"
    }


def test_each_simulator_keeps_its_ledger_on_a_volume_of_its_own() -> None:
    """A provider's books outlive its container: recreated, it still knows each authorization.
    The volume is mounted on the image's data folder, which its user owns (Dockerfile)."""
    compose = load_compose()
    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text(encoding="utf-8")
    data_dir = re.search(r"STRATA_DATA_DIR=(\S+)", dockerfile)
    assert data_dir is not None
    assert f"install -d -o strata -g strata {data_dir[1]}" in dockerfile
    mounts = []
    for simulator in SIMULATORS:
        service = compose["services"][simulator.service]
        [mount] = service["volumes"]
        volume, _, mounted_at = mount.partition(":")
        assert mounted_at == data_dir[1]
        ledger = environment_of(service)[simulator.ledger_variable]
        assert Path(ledger).parent == Path(mounted_at)
        assert volume in compose["volumes"]
        mounts.append(volume)
    assert len(set(mounts)) == len(SIMULATORS)


def test_beside_every_service_a_config_sidecar_writes_the_file_it_follows(
    registry: Registry,
) -> None:
    services = compose_for(registry)["services"]
    for live in live_services(registry):
        service, sidecar = services[live.name], services[live.config_sidecar]
        followed = environment_of(service)["STRATA_LIVE_SETTINGS_FILE"]

        assert words_of(sidecar["command"]) == ["strata-config-sidecar", "--service", live.name]
        assert environment_of(sidecar)["STRATA_LIVE_SETTINGS_FILE"] == followed
        assert (
            service["volumes"] == sidecar["volumes"] == [f"live-settings:{Path(followed).parent}"]
        )
        assert int(environment_of(sidecar)["STRATA_CONFIG_SIDECAR_PORT"]) == live.port + 5
        # in its service's network namespace (the relay's is its write service's)
        beside = sidecar["network_mode"].removeprefix("service:")
        assert beside == live.name or services[live.name]["network_mode"] == f"service:{beside}"
    simulators = {s.service for s in SIMULATORS}
    followers = {name for name, s in services.items() if "STRATA_LIVE_SETTINGS_FILE" in str(s)}
    project = {n for n, s in services.items() if "build" in s} - {"provision", *simulators}
    assert project == followers
