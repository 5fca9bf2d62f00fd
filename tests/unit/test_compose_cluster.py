"""compose.cluster.yaml, the override running the stack on a three-node JetStream cluster (issue 11,
item 5): the nodes form one cluster, and every service that uses NATS, generated per context or
not, is given every node and replicated streams. Checked on compose.yaml merged with it as
compose merges them, for the registered contexts and for one more."""

from typing import Any

import pytest

from contexts.registry import Registry
from tests.support.compose import REGISTRIES, compose_for, environment_of, with_override, words_of

OVERRIDE = "compose.cluster.yaml"
CLIENT_PORT, ROUTE_PORT = 4222, 6222


@pytest.fixture(params=list(REGISTRIES), ids=list(REGISTRIES))
def registry(request: pytest.FixtureRequest) -> Registry:
    return REGISTRIES[request.param]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def nodes_of(services: dict[str, Any]) -> dict[str, list[str]]:
    """The NATS nodes of a compose document: service name -> its command's words."""
    return {
        name: words_of(service.get("command"))
        for name, service in services.items()
        if "--cluster_name" in words_of(service.get("command"))
    }


def test_the_override_names_only_services_of_compose_yaml_and_the_new_nodes(
    registry: Registry,
) -> None:
    base = compose_for(registry)["services"]
    override = compose_for(registry, OVERRIDE)["services"]

    assert set(override) - set(base) == {"nats-2", "nats-3"}


def test_the_three_nodes_form_one_cluster_each_on_a_volume_of_its_own() -> None:
    merged = with_override(
        compose_for(REGISTRIES["registered"]), compose_for(REGISTRIES["registered"], OVERRIDE)
    )
    nodes = nodes_of(merged["services"])

    assert sorted(nodes) == ["nats", "nats-2", "nats-3"]
    assert {option(command, "--server_name") for command in nodes.values()} == {
        "nats-1",
        "nats-2",
        "nats-3",
    }
    assert {option(command, "--cluster_name") for command in nodes.values()} == {"strata"}
    for name, command in nodes.items():
        others = {f"nats://{other}:{ROUTE_PORT}" for other in nodes if other != name}
        assert set(option(command, "--routes").split(",")) == others
        assert option(command, "--cluster") == f"nats://0.0.0.0:{ROUTE_PORT}"
        assert "-js" in command
    volumes = [merged["services"][name]["volumes"] for name in nodes]
    assert len({volume[0].split(":")[0] for volume in volumes}) == 3
    assert {volume[0].split(":")[0] for volume in volumes} <= set(merged["volumes"])
    for name in nodes:
        service = merged["services"][name]
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"]


def test_every_service_using_nats_is_given_every_node_and_three_replicas(
    registry: Registry,
) -> None:
    merged = with_override(compose_for(registry), compose_for(registry, OVERRIDE))
    services = merged["services"]
    nodes = {f"nats://{name}:{CLIENT_PORT}" for name in nodes_of(services)}
    clients = {
        name: environment_of(service)
        for name, service in services.items()
        if "STRATA_NATS_URL" in environment_of(service)
    }

    assert {
        "projector",
        "relay-users",
        "write-orders",
        "config-write-users",
        "config-read-api",
    } <= set(clients)
    for name, environment in clients.items():
        assert set(environment["STRATA_NATS_URL"].split(",")) == nodes, name
        assert environment["STRATA_STREAM_REPLICAS"] == "3", name
    assert len(nodes) == 3
