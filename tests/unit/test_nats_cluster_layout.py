"""The loopback JetStream cluster of scripts/stack (`python -m eventlog.nats_cluster`): three
nodes, each routing to the two others, on ports of their own, with stores of their own, and the
clients' URL list naming every node. The cluster itself runs in
tests/e2e/test_nats_cluster_failover.py."""

import os
import subprocess
from pathlib import Path

import pytest

from eventlog import nats_cluster
from eventlog.nats_cluster import loopback_cluster, stack_cluster
from runtime.supervisor import Program

ROOT = Path(__file__).resolve().parents[2]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_each_node_routes_to_the_others_on_ports_and_a_store_of_its_own(tmp_path: Path) -> None:
    cluster = loopback_cluster([(4001, 6001, 8001), (4002, 6002, 8002), (4003, 6003, 8003)])
    commands = {node.name: cluster.command(node, tmp_path) for node in cluster.nodes}

    assert sorted(commands) == ["nats-1", "nats-2", "nats-3"]
    for name, command in commands.items():
        node = cluster.node(name)
        others = {other.route for other in cluster.nodes if other != node}
        assert set(option(command, "--routes").split(",")) == others
        assert option(command, "--cluster") == node.route
        assert option(command, "--server_name") == name
        assert option(command, "--store_dir") == str(tmp_path / name)
        assert option(command, "--cluster_name") == "strata"
        assert "--jetstream" in command
    ports = [int(option(c, flag)) for c in commands.values() for flag in ("--port", "--http_port")]
    assert len(set(ports)) == 6
    assert (
        cluster.client_urls == "nats://127.0.0.1:4001,nats://127.0.0.1:4002,nats://127.0.0.1:4003"
    )


def test_the_stack_s_ports_count_from_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [n.client_port for n in stack_cluster().nodes] == [4223, 4224, 4225]
    monkeypatch.setenv("STRATA_STACK_NATS_PORT", "14000")
    monkeypatch.setenv("STRATA_STACK_NATS_ROUTE_PORT", "16000")
    monkeypatch.setenv("STRATA_STACK_NATS_MONITOR_PORT", "18000")

    nodes = stack_cluster().nodes

    assert [(n.client_port, n.route_port, n.monitor_port) for n in nodes] == [
        (14000 + i, 16000 + i, 18000 + i) for i in range(3)
    ]


def test_the_commands_print_what_the_supervisor_runs_and_the_clients_urls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nats_cluster.main(["processes", "var/stack/nats"])
    programs = [Program.parse(line) for line in capsys.readouterr().out.splitlines()]
    nats_cluster.main(["urls"])
    urls = capsys.readouterr().out.strip()

    cluster = stack_cluster()
    assert [p.name for p in programs] == ["nats-1", "nats-2", "nats-3"]
    assert [p.argv for p in programs] == [
        cluster.command(node, Path("var/stack/nats")) for node in cluster.nodes
    ]
    assert urls == cluster.client_urls


@pytest.mark.parametrize("argv", [[], ["processes"], ["nodes"], ["urls", "extra"]])
def test_a_bad_command_is_one_line_of_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        nats_cluster.main(argv)

    assert exit_.value.code == nats_cluster.USAGE


@pytest.mark.parametrize("value", ["x", "0", "65535", "-1"])
def test_a_bad_port_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STRATA_STACK_NATS_PORT", value)

    with pytest.raises(SystemExit) as exit_:
        nats_cluster.main(["urls"])

    assert exit_.value.code == (
        f"python -m eventlog.nats_cluster: STRATA_STACK_NATS_PORT={value!r} is not a port"
    )


def test_scripts_stack_refuses_another_cluster_switch_in_one_line_before_starting_anything() -> (
    None
):
    env = {**os.environ, "STRATA_STACK_NATS_CLUSTER": "yes"}

    finished = subprocess.run(
        [str(ROOT / "scripts" / "stack")],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr == (
        "scripts/stack: STRATA_STACK_NATS_CLUSTER must be 0 or 1, not 'yes'\n"
    )
    assert finished.stdout == ""
