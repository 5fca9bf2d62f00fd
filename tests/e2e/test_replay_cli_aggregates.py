"""`replay state | history | diff` as an operator runs them: the console script, in a subprocess.

The stores are written in this process first, with events stamped by a fake clock in 2001 so that
every instant below is known; the CLI then reads them through the same settings (environment).
"""

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch
from uuid import UUID, uuid4

import pytest

from contexts.settings import CONTEXTS, Settings
from domain.orders.order import Order
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from eventlog.stores import build_services
from tests.support.postgres import require_postgres, scratch_databases, url_settings, url_variables
from tests.support.processes import run_cli, without_strata_variables

REPLAY = shutil.which("replay", path=str(Path(sys.executable).parent))
CREATED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def at(seconds: float) -> str:
    """The instant `seconds` after the profile was created, as an operator would type it."""
    return (CREATED + seconds * SECOND).isoformat()


@dataclass(frozen=True)
class Store:
    env: dict[str, str]
    user: UUID
    order: UUID


def write_history(settings: Settings) -> tuple[UUID, UUID]:
    """A profile: registered at 0 s, renamed at 10 s, Chess at 20 s, moved at 30 s.
    An order: created at 100 s, a line at 110 s, another at 120 s, placed at 130 s."""

    class Clock:
        now = CREATED

        def __call__(self) -> datetime:
            return self.now

    clock = Clock()
    stores = build_services(settings.model_copy(update={"group_commit": False}))
    try:
        with (
            patch.object(UserProfile.Event, "create_timestamp", staticmethod(clock)),
            patch.object(Order.Event, "create_timestamp", staticmethod(clock)),
        ):
            ctx = CommandContext(correlation_id="req-1")
            users, orders = stores.application(UsersService), stores.application(OrdersService)
            user = users.register(ctx, "Ada Lovelace", f"{uuid4().hex}@example.com").id
            clock.now += 10 * SECOND
            users.rename(ctx, user, "Ada King")
            clock.now += 10 * SECOND
            users.add_hobby(CommandContext(correlation_id="req-2"), user, "Chess")
            clock.now += 10 * SECOND
            users.change_location(ctx, user, "London", "GB")
            clock.now = CREATED + 100 * SECOND
            order = orders.create_order(ctx, user, "EUR").id
            for sku, quantity, price in (("A-1", 3, "9.99"), ("B-2", 1, "5")):
                clock.now += 10 * SECOND
                orders.add_line(ctx, order, sku, quantity, Decimal(price))
            clock.now += 10 * SECOND
            orders.place(ctx, order)
    finally:
        stores.close()
    return user, order


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("replay") / "var"
    user, order = write_history(Settings(data_dir=folder))
    return Store({"STRATA_DATA_DIR": str(folder)}, user, order)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


def replay(env: dict[str, str], *args: str) -> Run:
    assert REPLAY, "the `replay` console script is not installed"
    done = run_cli(REPLAY, {**without_strata_variables(), "COLUMNS": "200", **env}, *args)
    return Run(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------------------------------------
# state


def test_state_as_of_an_instant_in_json(embedded: Store) -> None:
    document = replay(embedded.env, "state", "users", str(embedded.user), "--at", at(25), "--json")

    assert document.json() == {
        "context": "users",
        "aggregate_type": "UserProfile",
        "id": str(embedded.user),
        "version": 3,
        "as_of": at(25),
        "last_event_at": at(20),
        "state": {
            "name": "Ada King",
            "email": document.json()["state"]["email"],
            "hobbies": ["Chess"],
            "city": None,
            "country": None,
            "active": True,
        },
    }


def test_state_at_an_event_time_includes_that_event_and_a_microsecond_before_does_not(
    embedded: Store,
) -> None:
    exactly = replay(embedded.env, "state", "users", str(embedded.user), "--at", at(10), "--json")
    before = replay(
        embedded.env, "state", "users", str(embedded.user), "--at", at(10 - 1e-6), "--json"
    )

    assert (exactly.json()["version"], exactly.json()["state"]["name"]) == (2, "Ada King")
    assert (before.json()["version"], before.json()["state"]["name"]) == (1, "Ada Lovelace")


def test_state_for_people_is_a_table_with_version_and_last_event_time(embedded: Store) -> None:
    run = replay(embedded.env, "state", "orders", str(embedded.order), "--at", at(125))

    assert run.code == 0, run.stderr
    assert f"Order {embedded.order} in orders" in run.stdout
    assert "version 3, last event 2001-02-03 04:07:06.000000 UTC" in run.stdout
    assert "as of 2001-02-03 04:07:11.000000 UTC" in run.stdout
    assert "sku=A-1, quantity=3, unit_price=9.99, subtotal=29.97" in run.stdout
    assert "sku=B-2, quantity=1, unit_price=5.00, subtotal=5.00" in run.stdout
    assert "draft" in run.stdout
    assert "34.97" in run.stdout
    assert run.stderr == ""


def test_state_at_a_version_and_relative_to_now(embedded: Store) -> None:
    second = replay(
        embedded.env, "state", "orders", str(embedded.order), "--version", "2", "--json"
    )
    latest = replay(embedded.env, "state", "orders", str(embedded.order), "--at", "-1s", "--json")

    assert second.json()["version"] == 2
    assert second.json()["as_of"] is None
    assert second.json()["state"]["lines"] == [
        {"sku": "A-1", "quantity": 3, "unit_price": "9.99", "subtotal": "29.97"}
    ]
    assert latest.json()["version"] == 4
    assert latest.json()["state"]["status"] == "placed"
    assert latest.json()["state"]["total"] == "34.97"


# ---------------------------------------------------------------------------------------------
# history


def test_history_lists_every_event_with_its_data_and_correlation_id(embedded: Store) -> None:
    events = replay(embedded.env, "history", "users", str(embedded.user), "--json").json()["events"]

    assert [(e["version"], e["type"], e["timestamp"]) for e in events] == [
        (1, "Registered", at(0)),
        (2, "Renamed", at(10)),
        (3, "HobbyAdded", at(20)),
        (4, "LocationChanged", at(30)),
    ]
    assert events[2]["data"] == {"hobby": "Chess"}
    assert [e["correlation_id"] for e in events] == ["req-1", "req-1", "req-2", "req-1"]
    assert all(isinstance(e["position"], int) for e in events)


def test_history_between_two_instants_is_inclusive_at_both_ends(embedded: Store) -> None:
    run = replay(
        embedded.env,
        "history",
        "users",
        str(embedded.user),
        "--since",
        at(10),
        "--until",
        at(20),
        "--json",
    )
    empty = replay(
        embedded.env, "history", "users", str(embedded.user), "--until", at(-1), "--json"
    )

    assert [e["version"] for e in run.json()["events"]] == [2, 3]
    assert (run.json()["since"], run.json()["until"]) == (at(10), at(20))
    assert empty.json()["events"] == []


def test_history_for_people_is_a_table(embedded: Store) -> None:
    run = replay(embedded.env, "history", "users", str(embedded.user), "--since", at(15))

    assert run.code == 0, run.stderr
    assert "2 events from 2001-02-03 04:05:21.000000" in run.stdout
    for text in ("HobbyAdded", "hobby=Chess", "req-2", "LocationChanged", "city=London"):
        assert text in run.stdout
    assert "Renamed" not in run.stdout


# ---------------------------------------------------------------------------------------------
# diff


def test_diff_shows_only_the_fields_that_changed(embedded: Store) -> None:
    document = replay(
        embedded.env, "diff", "users", str(embedded.user), "--from", at(5), "--to", at(30), "--json"
    ).json()

    assert document["from"] == {"as_of": at(5), "version": 1, "last_event_at": at(0)}
    assert document["to"] == {"as_of": at(30), "version": 4, "last_event_at": at(30)}
    assert document["changes"] == {
        "name": {"from": "Ada Lovelace", "to": "Ada King"},
        "hobbies": {"from": [], "to": ["Chess"]},
        "city": {"from": None, "to": "London"},
        "country": {"from": None, "to": "GB"},
    }


def test_diff_for_people_is_a_table_and_says_when_nothing_changed(embedded: Store) -> None:
    order = str(embedded.order)
    changed = replay(embedded.env, "diff", "orders", order, "--from", at(115), "--to", at(135))
    same = replay(embedded.env, "diff", "orders", order, "--from", at(131), "--to", "-1s")

    assert changed.code == 0, changed.stderr
    assert "from version 2 as of 2001-02-03 04:07:01.000000 UTC" in changed.stdout
    assert "to version 4 as of 2001-02-03 04:07:21.000000 UTC" in changed.stdout
    for text in ("lines", "status", "draft", "placed", "total", "29.97", "34.97"):
        assert text in changed.stdout
    assert "currency" not in changed.stdout
    assert same.code == 0, same.stderr
    assert "no field changed" in same.stdout


# ---------------------------------------------------------------------------------------------
# errors: one line on stderr, a documented exit code, never a traceback

GOOD_ID = "11111111-1111-1111-1111-111111111111"  # replaced by the real user id below


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["state", "billing", GOOD_ID, "--at", "now"], 2, "unknown context 'billing'"),
        (["state", "users", "not-a-uuid", "--at", "now"], 2, "'not-a-uuid' is not an aggregate"),
        (["history", "users", "{" + GOOD_ID + "}"], 2, "is not an aggregate id (a UUID)"),
        (["history", "users", GOOD_ID.replace("-", "")], 2, "is not an aggregate id (a UUID)"),
        (["state", "users", GOOD_ID, "--at", "yesterday"], 2, "--at: 'yesterday' is not a time"),
        (["state", "users", GOOD_ID], 2, "give exactly one of --at and --version"),
        (["state", "users", GOOD_ID, "--at", "now", "--version", "1"], 2, "exactly one"),
        (["state", "users", GOOD_ID, "--version", "0"], 2, "Invalid value for '--version'"),
        (["state", "users", GOOD_ID, "--version", "9" * 23], 2, "Invalid value for '--version'"),
        (["state", "users", GOOD_ID, "--at", at(-1)], 3, "did not exist yet at 2001-02-03T04:05"),
        (["state", "users", GOOD_ID, "--version", "9"], 3, "has no version 9; its latest is 4"),
        (["state", "orders", GOOD_ID, "--at", "now"], 3, "no Order with id"),
        (["history", "users", GOOD_ID, "--since", "now", "--until", "-1d"], 2, "--since is after"),
        (["history", "users", GOOD_ID, "--until", "soon"], 2, "--until: 'soon' is not a time"),
        (["history", "orders", str(uuid4())], 3, "no Order with id"),
        (["diff", "users", GOOD_ID, "--from", "now", "--to", "-1h"], 2, "--from is after --to"),
        (["diff", "users", GOOD_ID, "--from", at(-1), "--to", "now"], 3, "did not exist yet"),
        (["diff", "users", GOOD_ID, "--from", "now"], 2, "Missing option '--to'"),
        (["statte", "users", GOOD_ID], 2, "No such command 'statte'"),
    ],
)
def test_bad_requests_get_one_line_and_an_exit_code(
    embedded: Store, args: list[str], code: int, message: str
) -> None:
    args = [str(embedded.user) if arg == GOOD_ID else arg for arg in args]

    run = replay(embedded.env, *args)

    assert run.code == code, run.stderr
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("replay: ")
    assert message in run.stderr


@pytest.mark.parametrize("args", [[], ["dlq"], ["jobs"], ["sagas"]], ids=repr)
def test_a_command_left_out_is_the_usage_and_one_line_saying_so(
    embedded: Store, args: list[str]
) -> None:
    """`replay` alone, or a group without its command: the usage on stdout, and on stderr the
    one line every bad argument gets (it was an empty `replay: `)."""
    run = replay(embedded.env, *args)

    assert run.code == 2
    assert "Usage: replay" in run.stdout
    assert run.stderr == "replay: Missing command.\n"


def test_a_missing_embedded_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"

    run = replay({"STRATA_DATA_DIR": str(folder)}, "state", "users", str(uuid4()), "--at", "now")

    assert run.code == 1
    assert run.stderr == f"replay: no users event store at {folder}/users.sqlite" + (
        " (set STRATA_DATA_DIR, or the STRATA_*_DATABASE_URL settings for the stack)\n"
    )
    assert not folder.exists()


def test_an_unreachable_database_is_one_line() -> None:
    env = {
        **url_variables({c: f"postgresql://postgres@127.0.0.1:1/strata_{c}" for c in CONTEXTS}),
        "STRATA_DB_CONNECT_TIMEOUT": "1",
    }

    run = replay(env, "history", "users", str(uuid4()))

    assert run.code == 1
    assert run.stderr.startswith("replay: the users event store is unreachable: ")
    assert run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------------------------------
# the stack: the same commands, selected by the database URLs alone


@pytest.fixture(scope="module")
def stack() -> Iterator[Store]:
    url = require_postgres()
    with scratch_databases(url, *CONTEXTS) as urls:
        settings = Settings(**url_settings(urls))
        user, order = write_history(settings)
        env = url_variables(urls)
        yield Store(env, user, order)


@pytest.mark.postgres
def test_the_same_commands_work_on_the_stack(stack: Store) -> None:
    state = replay(stack.env, "state", "orders", str(stack.order), "--at", at(125), "--json")
    history = replay(stack.env, "history", "users", str(stack.user), "--json")
    diff = replay(
        stack.env, "diff", "users", str(stack.user), "--from", at(0), "--to", at(10), "--json"
    )
    before = replay(stack.env, "state", "users", str(stack.user), "--at", at(-1))

    assert (state.json()["version"], state.json()["state"]["total"]) == (3, "34.97")
    assert [e["type"] for e in history.json()["events"]] == [
        "Registered",
        "Renamed",
        "HobbyAdded",
        "LocationChanged",
    ]
    assert diff.json()["changes"] == {"name": {"from": "Ada Lovelace", "to": "Ada King"}}
    assert before.code == 3
    assert "did not exist yet" in before.stderr


@pytest.mark.postgres
def test_on_the_stack_the_context_s_own_url_is_enough(stack: Store) -> None:
    own = {"STRATA_ORDERS_DATABASE_URL": stack.env["STRATA_ORDERS_DATABASE_URL"]}

    state = replay(own, "state", "orders", str(stack.order), "--at", at(125), "--json")

    assert state.code == 0, state.stderr
    assert state.json()["state"]["total"] == "34.97"
