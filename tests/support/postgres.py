"""Scratch PostgreSQL databases for tests, on the server named by STRATA_TEST_POSTGRES_URL."""

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from contexts.settings import database_url_fields

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("STRATA_TEST_POSTGRES_URL", DEFAULT_URL)


def services_required() -> bool:
    return os.environ.get("STRATA_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"


def require_postgres() -> str:
    """The admin URL, after checking the server answers; fail (CI) or skip (laptop) if not."""
    url = admin_url()
    try:
        with psycopg.connect(url, connect_timeout=3):
            pass
    except psycopg.OperationalError as error:
        message = f"PostgreSQL at {url} is unreachable: {error}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return url


def url_settings(urls: Mapping[str, str]) -> dict[str, Any]:
    """`Settings` keyword arguments of these databases' URLs, by context (or `read`):
    `users_database_url`... (typed `Any`, as by `database_url_fields`: the model makes the
    context fields at run time)."""
    return database_url_fields(urls)


def url_variables(urls: Mapping[str, str]) -> dict[str, str]:
    """The environment variables of these databases' URLs: `STRATA_USERS_DATABASE_URL`..."""
    return {f"STRATA_{field.upper()}": url for field, url in url_settings(urls).items()}


def database_url(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


@contextmanager
def scratch_databases(url: str, *names: str) -> Iterator[dict[str, str]]:
    """Create databases `strata_t<random>_<name>` for the block, then drop them."""
    tag = uuid.uuid4().hex[:8]
    dbnames = {name: f"strata_t{tag}_{name}" for name in names}
    with psycopg.connect(url, autocommit=True) as conn:
        for dbname in dbnames.values():
            conn.execute(SQL("CREATE DATABASE {}").format(Identifier(dbname)))
    try:
        yield {name: database_url(url, dbname) for name, dbname in dbnames.items()}
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for dbname in dbnames.values():
                conn.execute(
                    SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(dbname))
                )


def forget_pending_jobs(urls: Mapping[str, str]) -> None:
    """Delete the jobs in these event stores (by context): the deadlines and provider calls of
    sagas an earlier test started on the session's shared stores, which would otherwise come
    due while a later test runs and append to its stores."""
    for context, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            table = conn.execute("SELECT to_regclass(%s)", (f"{context}_jobs",)).fetchone()
            if table is not None and table[0] is not None:
                conn.execute(SQL("DELETE FROM {}").format(Identifier(f"{context}_jobs")))


TERMINATE_OTHERS = (
    "SELECT count(pg_terminate_backend(pid, %s)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
TERMINATED_WITHIN_MS = 5_000
"""How long the drop waits for each backend to be gone. Without a wait it returns once the
signal is sent, and a read at once may draw a connection whose backend has not yet said
goodbye (a 503 a restart, which closes them all before anyone reads, never gives)."""


def drop_postgres_connections(database_url: str) -> int:
    """Have the server drop every other connection to this database, as a restart does; how
    many it dropped."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        row = admin.execute(TERMINATE_OTHERS, [TERMINATED_WITHIN_MS]).fetchone()
    assert row is not None
    return int(row[0])
