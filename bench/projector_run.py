"""(b) of bench/projector_throughput.py: `strata-projector` as a subprocess, timed from spawn
until every projection's checkpoint has reached the end of its context, with its RSS and CPU;
then spot checks of the read models it filled."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
from fanout_cpu import Spy, cpu_by_service
from fanout_stack import ModelKey, Service, StackConfig, clock, read_models, start_projector
from proc_cpu import Window
from projector_fill import CURRENCIES, Expected

RSS_EVERY = 50_000
POLL = 0.02


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class ProjectorRun:
    spawned: float
    rss_every: int = RSS_EVERY
    first_move: float | None = None
    done: float | None = None
    finished: dict[str, float] = field(default_factory=dict)  # label -> seconds after spawn
    rss: list[dict[str, Any]] = field(default_factory=list)  # every RSS_EVERY events
    rss_series: list[tuple[float, int]] = field(default_factory=list)  # (s, KiB) every 1 s
    progress_series: list[tuple[float, int]] = field(default_factory=list)
    cpu: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    next_rss: int = field(init=False)
    next_second: float = 0.0

    def __post_init__(self) -> None:
        self.next_rss = self.rss_every

    def observe(
        self, at: float, positions: dict[ModelKey, int], last: dict[str, int], pid: int
    ) -> None:
        """One poll `at` seconds after spawn: when the checkpoints first moved, which
        projections have finished, and the RSS samples that are due."""
        progress = sum(
            min(p for k, p in positions.items() if k.context == context) for context in last
        )
        if self.first_move is None and any(positions.values()):
            self.first_move = at
        for key, position in positions.items():
            if key.label not in self.finished and position >= last[key.context]:
                self.finished[key.label] = round(at, 3)
        while progress >= self.next_rss and self.next_rss <= sum(last.values()):
            self.rss.append(
                {"events": self.next_rss, "seconds": round(at, 2), "rss_kib": rss_kib(pid)}
            )
            self.next_rss += self.rss_every
        if at >= self.next_second:
            kib = rss_kib(pid)
            if kib is not None:
                self.rss_series.append((round(at, 2), kib))
            self.progress_series.append((round(at, 2), progress))
            self.next_second += 1.0


def read_checkpoints(
    redis_client: Any, pg: psycopg.Connection[Any], keys: list[ModelKey]
) -> dict[ModelKey, int]:
    found: dict[ModelKey, int] = {}
    redis_keys = [k for k in keys if k.store == "redis"]
    for key, value in zip(
        redis_keys, redis_client.mget([k.redis_key for k in redis_keys]), strict=True
    ):
        found[key] = int(value or 0)
    try:
        rows = pg.execute(
            "SELECT projection, version, context, position FROM rm_checkpoints"
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        rows = []
    by_name = {(r[0], r[1], r[2]): int(r[3]) for r in rows}
    for key in keys:
        if key.store == "postgres":
            found[key] = by_name.get((key.projection, key.version, key.context), 0)
    return found


def filled_models(per_context: dict[str, int]) -> list[ModelKey]:
    """The read models of the contexts the fill wrote to (the others have nothing to do)."""
    return [key for key in read_models() if key.context in per_context]


def run_projector(
    config: StackConfig,
    last: dict[str, int],
    *,
    timeout: float,
    profile_seconds: float,
    rss_every: int = RSS_EVERY,
) -> tuple[ProjectorRun, Service]:
    from redis import Redis  # noqa: PLC0415

    keys = filled_models(last)
    redis_client = Redis.from_url(config.redis_url)
    pg = psycopg.connect(config.url("read"), autocommit=True)
    window = Window()
    window("start")
    spawned = clock()
    service = start_projector(config)
    run = ProjectorRun(spawned, rss_every)
    spy: Spy | None = None
    try:
        while True:
            now = clock()
            check_alive(service, now - spawned, timeout)
            if spy is None and profile_seconds and now - spawned > 5:
                spy = Spy(service, config.log_dir, profile_seconds)
            positions = read_checkpoints(redis_client, pg, keys)
            at = clock() - spawned
            run.observe(at, positions, last, service.process.pid)
            if all(positions[k] >= last[k.context] for k in keys):
                run.done = at
                break
            time.sleep(POLL)
        window("end")
        run.cpu = cpu_by_service(window, [service])
        if spy is not None:
            run.profile = spy.finish()
    finally:
        redis_client.close()
        pg.close()
    return run, service


def check_alive(service: Service, elapsed: float, timeout: float) -> None:
    if elapsed > timeout:
        raise RuntimeError(f"the projector did not finish within {timeout:g} s")
    if service.process.poll() is not None:
        raise RuntimeError(f"the projector exited with {service.process.returncode}")


def verify(config: StackConfig, expected: Expected) -> dict[str, Any]:
    """Spot checks that the events were applied (not parked): row counts and money totals in
    PostgreSQL, and the top_spenders scores in Redis, against what the fill wrote."""
    found = {**read_model_figures(config), "top_spenders_cents": top_spenders_cents(config)}
    want_cents = {c: v for c, v in expected.paid_cents.items() if v}
    problems = []
    if found["dead_letters"]:
        problems.append(f"{found['dead_letters']} dead letters")
    if found["users_directory"] != expected.users:
        problems.append(f"users_directory {found['users_directory']} != {expected.users}")
    if found["orders"] != expected.orders:
        problems.append(f"orders {found['orders']} != {expected.orders}")
    if found["daily_sales_cents"] != want_cents:
        problems.append(f"daily_sales {found['daily_sales_cents']} != {want_cents}")
    if {c: v for c, v in found["top_spenders_cents"].items() if v} != want_cents:
        problems.append(f"top_spenders {found['top_spenders_cents']} != {want_cents}")
    found["ok"] = not problems
    found["problems"] = problems
    return found


def read_model_figures(config: StackConfig) -> dict[str, Any]:
    """Row counts and paid cents per currency in the PostgreSQL read models."""
    found: dict[str, Any] = {}
    with psycopg.connect(config.url("read"), autocommit=True) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

        found["dead_letters"] = one("SELECT count(*) FROM dead_letters")
        found["users_directory"] = one("SELECT count(*) FROM users_directory")
        found["orders"] = one("SELECT count(*) FROM orders")
        found["orders_paid"] = one("SELECT count(*) FROM orders WHERE status = 'paid'")
        rows = conn.execute(
            "SELECT currency, sum(paid_cents) FROM daily_sales GROUP BY currency"
        ).fetchall()
        found["daily_sales_cents"] = {c: int(v) for c, v in rows}
    return found


def top_spenders_cents(config: StackConfig) -> dict[str, int]:
    """The sum of the top_spenders scores per currency, in Redis."""
    from redis import Redis  # noqa: PLC0415

    client = Redis.from_url(config.redis_url)

    def scores(currency: str) -> list[tuple[bytes, float]]:
        # redis-py types zrange's answer as either shape; withscores gives (member, score) pairs
        key = f"rm:{{top_spenders:v1}}:top:{currency}"
        return cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))

    try:
        return {
            currency: int(sum(score for _, score in scores(currency))) for currency in CURRENCIES
        }
    finally:
        client.close()
