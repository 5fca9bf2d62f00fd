"""The read API as a client meets it: a real `strata-read-api` process over HTTP."""

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from readmodels.catalog import USER_PROFILES
from readmodels.sql import PostgresDatabase, SQLiteDatabase
from tests.support.auth import OPERATOR
from tests.support.postgres import require_postgres, scratch_databases
from tests.support.processes import entry_point, running_service
from tests.support.read_models import ReadModelWriter, require_redis, scratch_redis_database

ENTRY_POINT = entry_point("strata-read-api")


@contextmanager
def running_read_api(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with running_service(ENTRY_POINT, env, "STRATA_READ_API_PORT") as running:
        yield running


def serves_a_profile_and_waits_for_a_position(base: str, write: ReadModelWriter) -> None:
    user = uuid.uuid4()
    write.profile(user, "Ada", "ada@example.com")
    write.checkpoint(USER_PROFILES, "users", 1)

    profile = httpx.get(f"{base}/users/{user}", headers=OPERATOR)
    assert profile.status_code == 200
    assert profile.headers["X-Read-Position"] == "users:1"
    assert httpx.get(f"{base}/docs").status_code == 200

    late = httpx.get(
        f"{base}/users/{user}", params={"position": "users:2", "wait": 0.2}, headers=OPERATOR
    )
    assert late.status_code == 503
    assert late.headers["Retry-After"] == "1"


def stops_gracefully(process: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)
    assert time.monotonic() - started < 5
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output


def test_the_embedded_process_serves_the_read_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    write = ReadModelWriter(SQLiteDatabase(data_dir / "read.sqlite"))
    try:
        with running_read_api({"STRATA_DATA_DIR": str(data_dir)}) as (base, process):
            serves_a_profile_and_waits_for_a_position(base, write)
            stops_gracefully(process)
    finally:
        write.close()


@pytest.mark.postgres
def test_the_stack_process_serves_redis_and_postgres() -> None:
    with (
        scratch_databases(require_postgres(), "read") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        write = ReadModelWriter(
            PostgresDatabase(urls["read"]), redis.Redis.from_url(redis_url, decode_responses=True)
        )
        env = {"STRATA_READ_DATABASE_URL": urls["read"], "STRATA_REDIS_URL": redis_url}
        try:
            with running_read_api(env) as (base, process):
                serves_a_profile_and_waits_for_a_position(base, write)
                stops_gracefully(process)
        finally:
            write.close()


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("STRATA_REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("STRATA_READ_REPLICA_URL", "postgresql://postgres@127.0.0.1:5433/strata_read"),
    ],
)
def test_half_configured_stack_stores_stop_the_start_with_a_message(
    variable: str, url: str
) -> None:
    assert ENTRY_POINT
    result = subprocess.run(
        [ENTRY_POINT],
        env={**os.environ, variable: url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "STRATA_READ_DATABASE_URL" in result.stderr
