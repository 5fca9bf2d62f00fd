"""`STRATA_PORT_OFFSET` (contexts/stack_ports.py): scripts/stack moves every default port of every
process it starts by the offset, and the URLs the services find each other by with them; a port
variable that is set wins, unmoved; a bad offset is one line and a non-zero exit before anything
starts."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from contexts import stack_ports
from contexts.deployment import StackRun, stack_processes
from contexts.stack_ports import default_ports, stack_environment
from eventlog.nats_cluster import stack_cluster
from runtime.settings import CommonSettings
from tests.support.processes import run_cli

ROOT = Path(__file__).resolve().parents[2]
SECRET = "deployment-secret-for-tests"
PORT = re.compile(r"(?:PORT=|--port |127\.0\.0\.1:)(\d+)")


def stack_ports_in_use(monkeypatch: pytest.MonkeyPatch, offset: int) -> list[int]:
    """Every port in the commands of scripts/stack's processes and in the variables it exports
    (which they inherit), partitioned projector workers and JetStream cluster nodes included,
    at this offset."""
    environment = stack_environment({"STRATA_PORT_OFFSET": str(offset)})
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = CommonSettings(projector_mode="partitioned", projector_workers=2)
    processes = stack_processes("bin", settings, SECRET, run=StackRun("live", offset))
    nodes = stack_cluster().nodes
    cluster = [port for n in nodes for port in (n.client_port, n.route_port, n.monitor_port)]
    exported = [f"{variable}={value}" for variable, value in environment.items()]
    return [int(port) for line in [*processes, *exported] for port in PORT.findall(line)] + cluster


def test_an_offset_moves_every_port_of_the_stack_clear_of_the_default_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = stack_ports_in_use(monkeypatch, 0)
    moved = stack_ports_in_use(monkeypatch, 1000)

    assert len(default) > 40
    assert moved == [port + 1000 for port in default]
    assert not set(moved) & set(default)


def test_unset_the_ports_are_the_settings_defaults_and_the_urls_follow_them() -> None:
    environment = stack_environment({})

    assert environment["STRATA_PORT_OFFSET"] == "0"
    assert environment["STRATA_PORT"] == str(CommonSettings.model_fields["port"].default)
    assert {v: int(environment[v]) for v in default_ports()} == default_ports()
    assert environment["STRATA_IDENTITY_ISSUER"] == "http://127.0.0.1:8200"
    assert environment["STRATA_READ_API_URL"] == "http://127.0.0.1:8003"


def test_a_port_or_url_that_is_set_wins_unmoved_and_the_urls_follow_the_ports_in_effect() -> None:
    environ = {
        "STRATA_PORT_OFFSET": "0100",
        "STRATA_IDENTITY_PORT": "9200",
        "STRATA_READ_API_URL": "http://replica.example:80",
    }

    environment = stack_environment(environ)

    assert environment["STRATA_PORT_OFFSET"] == "100"
    assert "STRATA_IDENTITY_PORT" not in environment
    assert "STRATA_READ_API_URL" not in environment
    assert environment["STRATA_IDENTITY_ISSUER"] == "http://127.0.0.1:9200"
    assert environment["STRATA_READ_API_PORT"] == "8103"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "must be a non-negative integer, not '-1'"),
        ("1.5", "must be a non-negative integer, not '1.5'"),
        ("ten", "must be a non-negative integer, not 'ten'"),
        ("60000", "60000 moves port 8000 to 68000, past 65535"),
    ],
)
def test_a_bad_offset_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("STRATA_PORT_OFFSET", value)

    with pytest.raises(SystemExit) as exit_:
        stack_ports.main([])

    assert exit_.value.code == f"python -m contexts.stack_ports: STRATA_PORT_OFFSET {problem}"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "-5",
            "python -m contexts.stack_ports: STRATA_PORT_OFFSET must be a non-negative integer,"
            " not '-5'",
        ),
        (
            "55635",
            "python -m gateway.generate: STRATA_PORT_OFFSET 55635 moves port 9901 to 65536,"
            " past 65535",
        ),
    ],
)
def test_scripts_stack_refuses_a_bad_offset_in_one_line_before_starting_anything(
    value: str, problem: str
) -> None:
    # The script first brings .venv up to date, and says so when pyproject.toml changed since
    # (a checkout run by pytest directly, not scripts/test): not this test's line.
    ensure_venv = "source scripts/_venv.sh && ensure_venv"
    subprocess.run(["bash", "-c", ensure_venv], cwd=ROOT, check=True, capture_output=True)

    finished = run_cli(str(ROOT / "scripts" / "stack"), {**os.environ, "STRATA_PORT_OFFSET": value})

    assert finished.returncode != 0
    assert finished.stderr == problem + "\n"
    assert finished.stdout == ""
    assert not (ROOT / "var" / f"stack-{value}").exists()
