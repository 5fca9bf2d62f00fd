"""The embedded fan-out: commands reach the SQLite read models in the same process."""

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from contexts.settings import Settings
from domain.orders.service import OrdersService
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import envelope_source
from eventlog.stores import Services, build_services
from projections import dead_letters
from projections.admin import open_admin
from projections.catchup import project_log
from projections.embedded import EmbeddedFanout, start_embedded_fanout
from projections.model import Message, Park
from projections.targets import sql_targets
from readmodels.sql import READ_DATABASE, SQLiteDatabase
from tests.support.dumps import dump_read_models


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", group_commit=False)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.close()


def _wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds it took for `condition` to hold; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not reached within {seconds} s")
        time.sleep(0.01)
    return time.monotonic() - started


def _caught_up(fanout: EmbeddedFanout, services: Services) -> Callable[[], bool]:
    heads = {
        service.name: service.recorder.max_notification_id() or 0 for service in services.all()
    }
    return lambda: all(
        target.checkpoint(context).position >= heads[context]
        for target in fanout.targets
        for context in target.projection.contexts
    )


def test_a_command_reaches_every_read_model_after_a_wake(
    settings: Settings, services: Services
) -> None:
    fanout = start_embedded_fanout(settings, services, poll_interval=30)  # only wake() helps
    try:
        ctx = CommandContext(correlation_id="embedded")
        user = services.application(UsersService).register(ctx, "Grace", "grace@example.com").id
        order = services.application(OrdersService).create_order(ctx, user, "USD").id
        services.application(OrdersService).add_line(ctx, order, "COBOL", 3, Decimal("2.50"))
        services.application(OrdersService).place(ctx, order)
        services.application(OrdersService).mark_paid(ctx, order)
        fanout.wake()

        assert _wait_for(_caught_up(fanout, services), 5) < 5

        # Read the file as the read API does: another connection to <data_dir>/read.sqlite.
        reader = SQLiteDatabase(settings.data_dir / READ_DATABASE)
        try:
            with reader.transaction(write=False) as tx:
                [profile_name] = tx.query(
                    "SELECT value FROM rm_hashes WHERE projection = 'user_profiles'"
                    " AND key = ? AND field = 'name'",
                    [f"user:{user}"],
                )[0]
                spent = tx.query(
                    "SELECT value FROM rm_hashes WHERE projection = 'user_stats'"
                    " AND key = ? AND field = 'spent:USD'",
                    [f"stats:{user}"],
                )
                top = tx.query(
                    "SELECT member, score FROM rm_sorted_sets WHERE projection = 'top_spenders'"
                    " AND key = 'top:USD'"
                )
                orders = tx.query("SELECT status, total_cents FROM orders WHERE id = ?", [order])
                directory = tx.query("SELECT name_lower FROM users_directory WHERE id = ?", [user])
                sales = tx.query("SELECT currency, orders_paid, paid_cents FROM daily_sales")
        finally:
            reader.close()
        assert profile_name == "Grace"
        assert spent == [("750",)]
        assert top == [(str(user), 750)]
        assert orders == [("paid", 750)]
        assert directory == [("grace",)]
        assert sales == [("USD", 1, 750)]
    finally:
        fanout.stop()


def test_the_poll_picks_up_commits_nobody_announced(settings: Settings, services: Services) -> None:
    fanout = start_embedded_fanout(settings, services, poll_interval=0.05)
    try:
        services.application(UsersService).register(CommandContext(), "Linus", "linus@example.com")
        _wait_for(_caught_up(fanout, services), 5)
    finally:
        fanout.stop()


def test_a_restarted_fanout_resumes_and_equals_a_clean_projection(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    ctx = CommandContext()
    fanout = start_embedded_fanout(settings, services, poll_interval=0.05)
    user = services.application(UsersService).register(ctx, "Ada", "ada@example.com").id
    order = services.application(OrdersService).create_order(ctx, user, "EUR").id
    services.application(OrdersService).add_line(ctx, order, "X", 1, Decimal("1.00"))
    _wait_for(_caught_up(fanout, services), 5)
    fanout.stop()

    services.application(UsersService).rename(ctx, user, "Ada King")  # while no fan-out runs
    services.application(OrdersService).place(ctx, order)
    services.application(OrdersService).mark_paid(ctx, order)
    fanout = start_embedded_fanout(settings, services, poll_interval=0.05)
    try:
        _wait_for(_caught_up(fanout, services), 5)
        live = dump_read_models(fanout.targets)
    finally:
        fanout.stop()

    clean_db = SQLiteDatabase(tmp_path / "clean.sqlite")
    try:
        clean = sql_targets(clean_db)
        sources = {s.name: envelope_source(s.recorder) for s in services.all()}
        project_log(sources, clean)
        assert dump_read_models(clean) == live
    finally:
        clean_db.close()
    assert live["user_stats"][f"stats:{user}"] == {"orders": "1", "spent:EUR": "100"}


def test_the_dead_letters_of_the_embedded_read_models_open_from_the_settings(
    settings: Settings, services: Services
) -> None:
    fanout = start_embedded_fanout(settings, services, poll_interval=0.05)
    user = (
        services.application(UsersService).register(CommandContext(), "Ada", "ada@example.com").id
    )
    _wait_for(_caught_up(fanout, services), 5)
    fanout.stop()
    [registered] = envelope_source(services.users.recorder).select_envelopes("users", 0, 10)
    db = SQLiteDatabase(settings.data_dir / READ_DATABASE)
    with db.transaction() as tx:  # as if the projection had failed on it
        park = Park(Message(registered), "ValueError: test", attempts=4)
        dead_letters.insert(tx, "users_directory", 1, "users", [park])
    db.close()

    with open_admin(settings) as admin:
        [letter] = admin.listing()
        assert (letter.projection, letter.aggregate_id, letter.attempts) == (
            "users_directory",
            user,
            4,
        )
        assert admin.skip(letter.id).status == "skipped"
        assert admin.listing() == []
