"""What scripts/stack runs per context comes from the registry at run time: a registry with one
more context yields that context's write service and relay on the next ports, and its store.
The registry here is fixed (users, orders, notes), so registering a context changes no test; the
providers' simulators and the wiring of the write services are checked on the registered one."""

import pytest

from contexts import deployment
from contexts.deployment import event_store_urls, stack_processes, write_endpoints
from contexts.orders import ORDERS
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.users import USERS
from runtime.settings import CommonSettings
from tests.support.notes_context import NOTES

WITH_NOTES = Registry(USERS, ORDERS, NOTES)
DEFAULTS = CommonSettings(host="127.0.0.1", port=8000, relay_port=8001)


def test_each_context_runs_a_write_service_and_a_relay_on_its_ports() -> None:
    assert stack_processes(".venv/bin/", DEFAULTS, WITH_NOTES) == [
        "write-users=env STRATA_PORT=8000 .venv/bin/strata-write-api --context users",
        "relay-users=env STRATA_RELAY_PORT=8001 .venv/bin/strata-relay --context users",
        "write-orders=env STRATA_PORT=8010 .venv/bin/strata-write-api --context orders",
        "relay-orders=env STRATA_RELAY_PORT=8011 .venv/bin/strata-relay --context orders",
        "write-notes=env STRATA_PORT=8020 .venv/bin/strata-write-api --context notes",
        "relay-notes=env STRATA_RELAY_PORT=8021 .venv/bin/strata-relay --context notes",
    ]


def test_the_ports_count_from_the_configured_ones() -> None:
    moved = CommonSettings(host="127.0.0.1", port=9000, relay_port=9101)

    assert stack_processes("bin", moved, WITH_NOTES)[-2:] == [
        "write-notes=env STRATA_PORT=9020 bin/strata-write-api --context notes",
        "relay-notes=env STRATA_RELAY_PORT=9121 bin/strata-relay --context notes",
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
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("STRATA_HOST", "STRATA_PORT", "STRATA_RELAY_PORT"):
        monkeypatch.delenv(variable, raising=False)

    deployment.main(["processes", ".venv/bin"])

    assert capsys.readouterr().out.splitlines() == stack_processes(".venv/bin", DEFAULTS)


@pytest.mark.parametrize("argv", [[], ["processes"], ["event-stores"], ["endpoints", "x"]])
def test_bad_arguments_print_the_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match=r"^usage: python -m contexts\.deployment event-stores"):
        deployment.main(argv)


def test_the_providers_simulators_run_and_each_write_service_is_told_whom_it_calls() -> None:
    moved = CommonSettings(host="127.0.0.1", port=9000, payment_provider_port=9100)
    processes = dict(line.split("=", 1) for line in stack_processes("bin", moved, REGISTRY))

    assert processes["payment-provider"] == "bin/strata-payment-provider --port 9100"
    assert processes["carrier"] == "bin/strata-carrier --port 8101"
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
