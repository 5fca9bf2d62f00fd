"""`replay sagas list | show | retry | skip | resolve` as an operator runs them: the console
script, in a subprocess, on the embedded stores.

A saga is parked in this process first: started, its authorization timed out, and the
compensation (cancelling the order) timed out too; the embedded fan-out projects it into the
read model that `list` reads. No job poller runs, so nothing else moves it.
"""

from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from contexts.fulfilment import ids
from contexts.fulfilment.definition import deadline_id
from contexts.fulfilment.domain import OrderFulfilment
from contexts.fulfilment.service import FulfilmentService
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from domain.service import CommandContext, Decision
from embedded.app import create_app
from eventlog.stores import Services, build_services
from tests.e2e.test_replay_cli_aggregates import replay
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.servers import wait_until


def time_out(fulfilment: FulfilmentService, saga_id: UUID, step: str, generation: int) -> None:
    key = deadline_id(saga_id, step, generation)
    ctx = CommandContext(idempotency_key=key, fingerprint=key)
    fulfilment.update(ctx, OrderFulfilment, saga_id, lambda saga: saga.timed_out(step, key))


def park(fulfilment: FulfilmentService, order: UUID) -> None:
    saga = OrderFulfilment.start(order, uuid4(), Decimal("12.50"), "EUR")
    ctx = CommandContext(idempotency_key=f"start {order}", fingerprint=str(order))
    fulfilment.create(ctx, lambda: Decision(saga))
    time_out(fulfilment, saga.id, "authorize", 0)
    time_out(fulfilment, saga.id, "cancel_order", 0)


@dataclass(frozen=True)
class Parked:
    env: dict[str, str]
    shown: UUID
    """The order of a saga left parked."""
    operated: UUID
    """The order of a saga the operator retries and resolves."""


@pytest.fixture(scope="module")
def parked(tmp_path_factory: pytest.TempPathFactory) -> Parked:
    folder = tmp_path_factory.mktemp("sagas") / "var"
    quiet = Registry(*(replace(context, workers=()) for context in REGISTRY))
    orders = sorted([uuid4(), uuid4()])
    with TestClient(
        create_app(Settings(data_dir=folder), contexts=quiet), headers=OPERATOR
    ) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        for order in orders:
            park(services.application(FulfilmentService), order)
        wait_until(
            lambda: len(client.get("/read/fulfilments?status=parked").json()["items"]) == 2,
            10,
            "the parked sagas in the read model",
        )
    return Parked({"STRATA_DATA_DIR": str(folder)}, *orders)


def test_list_shows_the_parked_sagas(parked: Parked) -> None:
    env, order = parked.env, parked.shown
    listed = replay(env, "sagas", "list", "--status", "parked", "--json").json()["sagas"]
    assert {(s["order_id"], s["status"], s["step"]) for s in listed} == {
        (str(order), "parked", "cancel_order"),
        (str(parked.operated), "parked", "cancel_order"),
    }
    assert listed[0]["attention"] == "cancel_order was not confirmed before its deadline"
    assert replay(env, "sagas", "list", "--status", "completed", "--json").json() == {"sagas": []}
    human = replay(env, "sagas", "list")
    assert human.code == 0 and str(order) in human.stdout


def test_show_reads_the_saga_and_its_events_from_the_store(
    parked: Parked,
) -> None:
    env, order = parked.env, parked.shown
    shown = replay(env, "sagas", "show", str(order), "--json").json()
    assert shown["order_id"] == str(order)
    assert (shown["state"]["status"], shown["state"]["step"]) == ("parked", "cancel_order")
    assert [event["type"] for event in shown["events"]][-2:] == ["StepTimedOut", "Parked"]
    assert replay(env, "sagas", "show", str(order)).code == 0


def test_retry_then_resolve_with_one_line_refusals(parked: Parked) -> None:
    env, order = parked.env, parked.operated
    retried = replay(env, "sagas", "retry", str(order), "--key", "op-1", "--json").json()
    assert (retried["action"], retried["status"]) == ("retry", "compensating")

    again = replay(env, "sagas", "retry", str(order))
    assert again.code == 1
    assert again.stderr == f"replay: the fulfilment of order {order} is compensating, not parked\n"

    stores = build_services(Settings(data_dir=Path(env["STRATA_DATA_DIR"])))
    try:
        fulfilment = stores.application(FulfilmentService)
        time_out(fulfilment, ids.saga_id(order), "cancel_order", 1)  # parked again
    finally:
        stores.close()
    resolved = replay(env, "sagas", "resolve", str(order), "--note", "refunded by hand", "--json")
    assert resolved.json()["status"] == "resolved"


def test_skip_goes_on_past_the_parked_step_with_one_line_refusals(parked: Parked) -> None:
    env, order = parked.env, uuid4()
    stores = build_services(Settings(data_dir=Path(env["STRATA_DATA_DIR"])))
    try:
        park(stores.application(FulfilmentService), order)  # on cancel_order, its last step
    finally:
        stores.close()

    no_note = replay(env, "sagas", "skip", str(order), "--note", " ")
    assert (no_note.code, no_note.stderr) == (
        2,
        "replay: --note must be 1 to 500 characters, got 0\n",
    )
    skipped = replay(env, "sagas", "skip", str(order), "--note", "cancelled by hand", "--json")
    assert (skipped.json()["action"], skipped.json()["status"]) == ("skip", "cancelled")
    shown = replay(env, "sagas", "show", str(order), "--json").json()
    assert [event["type"] for event in shown["events"]][-2:] == ["StepSkipped", "Cancelled"]

    again = replay(env, "sagas", "skip", str(order), "--note", "cancelled by hand")
    assert again.code == 1
    assert again.stderr == f"replay: the fulfilment of order {order} is cancelled, not parked\n"


def test_unknown_and_malformed_orders(parked: Parked) -> None:
    env = parked.env
    unknown = uuid4()
    missing = replay(env, "sagas", "show", str(unknown))
    assert (missing.code, missing.stderr) == (3, f"replay: no fulfilment of order {unknown}\n")
    not_started = replay(env, "sagas", "retry", str(unknown))
    assert (not_started.code, not_started.stderr) == (missing.code, missing.stderr)
    malformed = replay(env, "sagas", "retry", "nope")
    assert (malformed.code, malformed.stderr) == (2, "replay: 'nope' is not an order id (a UUID)\n")
    bad_status = replay(env, "sagas", "list", "--status", "stuck")
    assert bad_status.code == 2


@pytest.mark.parametrize("key", ["", "a\nb", "k" * 201, "clé"])
def test_a_key_the_write_api_would_refuse_is_a_bad_argument(parked: Parked, key: str) -> None:
    def events() -> int:
        return len(
            replay(parked.env, "sagas", "show", str(parked.shown), "--json").json()["events"]
        )

    before = events()
    done = replay(parked.env, "sagas", "retry", str(parked.shown), "--key", key)
    assert (done.code, done.stderr) == (
        2,
        "replay: --key: Idempotency-Key must be 1 to 200 visible ASCII characters\n",
    )
    assert events() == before


@pytest.mark.postgres
def test_on_the_stack_the_fulfilment_and_read_databases_are_enough() -> None:
    with scratch_databases(require_postgres(), "read", "fulfilment") as urls:
        env = {f"STRATA_{name.upper()}_DATABASE_URL": url for name, url in urls.items()}
        listed = replay(env, "sagas", "list")

    assert listed.code == 1  # a read database never provisioned: its tables are missing
    assert listed.stderr.startswith("replay: the read models failed: UndefinedTable: "), (
        listed.stderr
    )
