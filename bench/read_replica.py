"""Read-your-writes on a read replica: commit -> answered, through `strata-read-api` reading a
streaming replica, against the raw replication lag measured in the same run.

A primary and its streaming replica run on free ports (`tests/support/replica.py`, as root the
servers run as the `postgres` user). Each round commits one directory entry and its checkpoint
`users:k` on the primary (as the projector does), then:

(raw)     polls the replica's `rm_checkpoints` in a tight loop until it shows k: how long the
          commit takes to become visible on the replica, the floor of any read from it;
(replica) asks a read API on the replica `GET /users?position=users:k` (it waits for k);
(primary) asks a read API on the primary the same (woken by NOTIFY): the usual path.

Prints p50/p99 of each, the ratio replica p50 / raw p50 (the price of the polled wait and the
HTTP request on top of replication) and replica p50 / primary p50 (what reading a replica adds).

    .venv/bin/python bench/read_replica.py --rounds 300
"""

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from readmodels.catalog import USERS_DIRECTORY  # noqa: E402
from readmodels.sql import PostgresDatabase  # noqa: E402
from tests.support.processes import entry_point, running_service  # noqa: E402
from tests.support.read_models import (  # noqa: E402
    ReadModelWriter,
    require_redis,
    scratch_redis_database,
)
from tests.support.replica import replicated_postgres  # noqa: E402

CHECKPOINT = (
    "SELECT position FROM rm_checkpoints"
    " WHERE projection = 'users_directory' AND version = 1 AND context = 'users'"
)


def raw_visibility(replica_url: str) -> Callable[[int], None]:
    conn = psycopg.connect(replica_url, autocommit=True)

    def until(position: int) -> None:
        while True:
            row = conn.execute(CHECKPOINT).fetchone()
            if row is not None and row[0] >= position:
                return

    return until


def api_read(base: str) -> Callable[[int], None]:
    client = httpx.Client(base_url=base, timeout=10)

    def until(position: int) -> None:
        params: dict[str, str | int] = {"position": f"users:{position}", "wait": 5, "limit": 1}
        response = client.get("/users", params=params)
        assert response.status_code == 200, response.text

    return until


def summary(name: str, seconds: list[float]) -> float:
    ms = sorted(s * 1000 for s in seconds)
    p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
    print(f"  {name:<28} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(ms)} rounds)")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="commits per kind of read")
    rounds = parser.parse_args().rounds
    with replicated_postgres() as pair, scratch_redis_database(require_redis()) as redis_url:
        name = "strata_bench_read"
        pair.primary.create_databases(name)
        writer = ReadModelWriter(
            PostgresDatabase(pair.primary.url(name)),
            redis.Redis.from_url(redis_url, decode_responses=True),
        )
        pair.replica.catch_up()
        env = {
            "STRATA_AUTH": "insecure",
            "STRATA_READ_DATABASE_URL": pair.primary.url(name),
            "STRATA_REDIS_URL": redis_url,
        }
        replica_env = {**env, "STRATA_READ_REPLICA_URL": pair.replica.url(name)}
        script = entry_point("strata-read-api")
        with (
            running_service(script, replica_env, "STRATA_READ_API_PORT", ready_seconds=60) as (
                on_replica,
                _,
            ),
            running_service(script, env, "STRATA_READ_API_PORT", ready_seconds=60) as (
                on_primary,
                _,
            ),
        ):
            readers = {
                "raw replica visibility": raw_visibility(pair.replica.url(name)),
                "read API on the replica": api_read(on_replica),
                "read API on the primary": api_read(on_primary),
            }
            timings: dict[str, list[float]] = {kind: [] for kind in readers}
            position = 0
            for _ in range(rounds):
                for kind, read in readers.items():
                    position += 1
                    writer.directory_entry(uuid.uuid4(), f"Bench {position}")
                    writer.checkpoint(USERS_DIRECTORY, "users", position)
                    started = time.perf_counter()
                    read(position)
                    timings[kind].append(time.perf_counter() - started)
        writer.close()
    print("commit on the primary -> read reflecting it:")
    p50 = {kind: summary(kind, seconds) for kind, seconds in timings.items()}
    replica = p50["read API on the replica"]
    for base in ("raw replica visibility", "read API on the primary"):
        print(f"ratio replica read p50 / {base} p50: {replica / p50[base]:.2f}")


if __name__ == "__main__":
    main()
