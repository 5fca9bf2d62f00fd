"""Setting up the snapshot store: replicas starting at the same moment on fresh PostgreSQL
databases all start (the snapshots table is created once), and an interval of 0 takes none."""

import threading
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from contexts.settings import CONTEXTS, Settings
from domain.users.profile import UserProfile
from domain.users.service import UsersService
from eventlog.stores import build_services
from tests.support.as_of import NO_CONTEXT
from tests.support.postgres import require_postgres, scratch_databases, url_settings


@pytest.mark.postgres
def test_replicas_starting_together_on_fresh_databases_all_start() -> None:
    url = require_postgres()
    with scratch_databases(url, *CONTEXTS) as urls:
        settings = Settings(**url_settings(urls))
        start = threading.Barrier(4)
        failures: list[BaseException] = []

        def replica() -> None:
            start.wait()
            try:
                build_services(settings).close()
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

        threads = [threading.Thread(target=replica) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        with psycopg.connect(urls["users"]) as conn:
            found = conn.execute("SELECT to_regclass('users_snapshots') IS NOT NULL").fetchone()
        assert found == (True,)


def test_zero_interval_takes_no_snapshots(tmp_path: Path) -> None:
    stores = build_services(Settings(data_dir=tmp_path, group_commit=False, snapshot_interval=0))
    try:
        user = (
            stores.application(UsersService)
            .register(NO_CONTEXT, "Ada", f"{uuid4().hex}@example.com")
            .id
        )
        for n in range(5):
            stores.application(UsersService).rename(NO_CONTEXT, user, f"Ada {n}")
        assert stores.users.snapshots is None
        assert stores.users.state_at(UserProfile, user, version=4).name == "Ada 2"
    finally:
        stores.close()
