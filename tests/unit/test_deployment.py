"""What scripts/stack runs per context comes from the registry at run time: a registry with one
more context yields that context's write service and relay on the next ports, and its store;
beside every service but the simulators runs its config sidecar.
The registry here is fixed (users, orders, notes), so registering a context changes no test; the
providers' simulators and the wiring of the write services are checked on the registered one."""

import json
from pathlib import Path
from shlex import split

import pytest

from contexts import deployment
from contexts.deployment import (
    event_store_urls,
    live_services,
    stack_processes,
    write_endpoints,
)
from contexts.live_services import IDENTITY, SHARED_SERVICES
from contexts.orders import ORDERS
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.users import USERS
from runtime.settings import CommonSettings
from tests.support.notes_context import NOTES

WITH_NOTES = Registry(USERS, ORDERS, NOTES)
DEFAULTS = CommonSettings(host="127.0.0.1", port=8000, relay_port=8001)
SECRET = "deployment-secret-for-tests"


def processes_of(
    bin_dir: str, settings: CommonSettings, registry: Registry = REGISTRY
) -> list[str]:
    """The per-context processes (not identity's, checked on its own, nor the shared ones')."""
    lines = stack_processes(bin_dir, settings, SECRET, registry)
    shared = {s.name for s in (IDENTITY, *SHARED_SERVICES)}
    return [line for line in lines if line.split("=", 1)[0].removeprefix("config-") not in shared]


def _live(service: str) -> str:
    return f"STRATA_LIVE_SETTINGS_FILE=var/stack/live/{service}.json"


def _sidecar(bin_dir: str, service: str, port: int) -> str:
    return (
        f"config-{service}=env STRATA_CONFIG_SIDECAR_PORT={port} {_live(service)}"
        f" {bin_dir}/strata-config-sidecar --service {service}"
    )


def test_each_context_runs_a_write_service_and_a_relay_each_with_a_config_sidecar() -> None:
    bin_dir = ".venv/bin"
    assert processes_of(f"{bin_dir}/", DEFAULTS, WITH_NOTES) == [
        line
        for index, name in enumerate(("users", "orders", "notes"))
        for line in (
            f"write-{name}=env STRATA_PORT={8000 + 10 * index} {_live(f'write-{name}')}"
            f" {bin_dir}/strata-write-api --context {name}",
            _sidecar(bin_dir, f"write-{name}", 8005 + 10 * index),
            f"relay-{name}=env STRATA_RELAY_PORT={8001 + 10 * index} {_live(f'relay-{name}')}"
            f" {bin_dir}/strata-relay --context {name}",
            _sidecar(bin_dir, f"relay-{name}", 8006 + 10 * index),
        )
    ]


def test_every_other_service_runs_with_its_config_sidecar_on_its_port_plus_5() -> None:
    lines = stack_processes("bin", DEFAULTS, SECRET)
    for service, port in [
        ("identity", 8205),
        ("projector", 8007),
        ("read-api", 8008),
        ("bff-web", 8215),
        ("bff-mobile", 8225),
    ]:
        command = next(line for line in lines if line.startswith(f"{service}="))
        assert _live(service) in split(command), service
        assert lines[lines.index(command) + 1] == _sidecar("bin", service, port)
    assert [s.name for s in live_services()] == [
        line.removeprefix("config-").split("=")[0] for line in lines if line.startswith("config-")
    ]


def test_partitioned_the_stack_runs_the_workers_asked_for_sharing_one_config_sidecar() -> None:
    settings = DEFAULTS.model_copy(update={"projector_mode": "partitioned", "projector_workers": 3})
    lines = stack_processes("bin", settings, SECRET)
    projectors = [line for line in lines if "projector" in line.split("=", 1)[0]]

    assert projectors == [
        *(
            f"projector-{n}=env STRATA_PROJECTOR_PORT={8302 + n} {_live('projector')}"
            " bin/strata-projector"
            for n in (1, 2, 3)
        ),
        _sidecar("bin", "projector", 8007),
    ]


def test_the_ports_count_from_the_configured_ones() -> None:
    moved = CommonSettings(host="127.0.0.1", port=9000, relay_port=9101, config_sidecar_port=7005)

    assert processes_of("bin", moved, WITH_NOTES)[-4:] == [
        f"write-notes=env STRATA_PORT=9020 {_live('write-notes')}"
        " bin/strata-write-api --context notes",
        _sidecar("bin", "write-notes", 7025),
        f"relay-notes=env STRATA_RELAY_PORT=9121 {_live('relay-notes')}"
        " bin/strata-relay --context notes",
        _sidecar("bin", "relay-notes", 7026),
    ]
    assert write_endpoints(moved, WITH_NOTES) == [
        "users write API:  http://127.0.0.1:9000/docs",
        "orders write API: http://127.0.0.1:9010/docs",
        "notes write API:  http://127.0.0.1:9020/docs",
    ]


def test_each_event_store_defaults_to_its_database_unless_its_variable_is_set() -> None:
    environ = {"STRATA_ORDERS_DATABASE_URL": "postgresql://elsewhere/orders"}

    assert event_store_urls("postgresql://pg:5432/", environ, WITH_NOTES) == [
        "STRATA_USERS_DATABASE_URL=postgresql://pg:5432/strata_users",
        "STRATA_ORDERS_DATABASE_URL=postgresql://elsewhere/orders",
        "STRATA_NOTES_DATABASE_URL=postgresql://pg:5432/strata_notes",
    ]


def test_the_command_prints_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("STRATA_HOST", "STRATA_PORT", "STRATA_RELAY_PORT"):
        monkeypatch.delenv(variable, raising=False)

    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\n")

    deployment.main(["processes", ".venv/bin", str(secret_file)])

    expected = stack_processes(".venv/bin", DEFAULTS, SECRET)
    assert capsys.readouterr().out.splitlines() == expected


@pytest.mark.parametrize(
    "argv", [[], ["processes"], ["processes", "bin"], ["event-stores"], ["endpoints", "x"]]
)
def test_bad_arguments_print_the_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match=r"^usage: python -m contexts\.deployment event-stores"):
        deployment.main(argv)


def test_the_providers_simulators_run_and_each_write_service_is_told_whom_it_calls() -> None:
    moved = CommonSettings(host="127.0.0.1", port=9000, payment_provider_port=9100)
    processes = dict(line.split("=", 1) for line in processes_of("bin", moved))

    assert processes["payment-provider"] == (
        "env STRATA_PAYMENT_PROVIDER_LEDGER=var/stack/payment-provider.sqlite"
        " bin/strata-payment-provider --port 9100"
    )
    assert processes["carrier"] == (
        "env STRATA_CARRIER_LEDGER=var/stack/carrier.sqlite bin/strata-carrier --port 8101"
    )
    kept = CommonSettings(carrier_ledger=Path("/data/carrier.sqlite"))  # set: left as it is
    assert "carrier=bin/strata-carrier --port 8101" in processes_of("bin", kept)
    assert "STRATA_PAYMENT_PROVIDER_URL=http://127.0.0.1:9100 " in processes["write-payments"]
    assert "STRATA_CARRIER_URL=http://127.0.0.1:8101 " in processes["write-shipping"]
    write_urls = (
        "STRATA_WRITE_URLS=users=http://127.0.0.1:9000,orders=http://127.0.0.1:9010,"
        "payments=http://127.0.0.1:9020,shipping=http://127.0.0.1:9030 "
    )
    assert write_urls in processes["write-fulfilment"]
    for name in ("write-users", "write-orders", "relay-payments", "relay-fulfilment"):
        assert "_URL" not in processes[name], name
    assert write_endpoints(moved, REGISTRY)[-2:] == [
        "payment-provider simulator: http://127.0.0.1:9100/docs",
        "carrier simulator:          http://127.0.0.1:8101/docs",
    ]


def test_identity_creates_the_accounts_whose_secrets_the_saga_signs_in_with() -> None:
    processes = dict(line.split("=", 1) for line in stack_processes("bin", DEFAULTS, SECRET))
    identity = dict(word.split("=", 1) for word in split(processes["identity"])[1:-2])
    clients = {c["client_id"]: c for c in json.loads(identity["STRATA_IDENTITY_BOOTSTRAP_CLIENTS"])}

    assert identity["STRATA_WRITE_URLS"] == "users=http://127.0.0.1:8000"
    assert (
        clients["fulfilment"]["scope"] == "users:write orders:write payments:write shipping:write"
    )
    assert (clients["fulfilment"]["role"], clients["operator"]["role"]) == ("service", "operator")
    saga = dict(word.split("=", 1) for word in split(processes["write-fulfilment"])[1:-3])
    assert saga["STRATA_SERVICE_CLIENT_ID"] == "fulfilment"
    assert saga["STRATA_SERVICE_CLIENT_SECRET"] == clients["fulfilment"]["secret"]
    assert clients["fulfilment"]["secret"] != clients["operator"]["secret"]
    for name in ("write-users", "write-orders", "write-payments", "write-shipping"):
        assert "STRATA_SERVICE_CLIENT" not in processes[name], name
