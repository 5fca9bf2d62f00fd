"""The fan-out benches' stack: settings, databases, the strata services as subprocesses,
the read models they fill, and small helpers shared by the benches."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import loadgen
from bench_auth import unthrottled
from bench_host import (
    HOST,
    admin_url,
    flush_redis_database,
    free_port,
    ms,
    recreate_database,
    stop_process_group,
    venv_script,
)

from contexts.registered import REGISTRY
from projections.model import OpsProjection, SqlProjection
from projections.models import all_projections

DB_PREFIX = "strata_bench_fan"
CONTEXTS = REGISTRY.names
CHANNEL_PG = "rm_ckpt"

clock = time.perf_counter
WALL_OFFSET = time.time() - clock()
"""time.time() - perf_counter(): puts the events' wall-clock timestamps on the bench's clock."""


def percentiles(values: list[float]) -> dict[str, Any]:
    """n, p50/p90/p99/max (ms) of values in seconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(q: int) -> float:
        return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": ms(rank(50)),
        "p90_ms": ms(rank(90)),
        "p99_ms": ms(rank(99)),
        "max_ms": ms(ordered[-1]),
        "mean_ms": ms(sum(ordered) / len(ordered)),
    }


# --------------------------------------------------------------------------------------------
# the read models: which projections read which context, and where they live


@dataclass(frozen=True)
class ModelKey:
    store: str  # "redis" | "postgres"
    projection: str
    version: int
    context: str

    @property
    def redis_key(self) -> str:
        return f"rm:{{{self.projection}:v{self.version}}}:ckpt:{self.context}"

    @property
    def label(self) -> str:
        return f"{self.projection}:v{self.version}/{self.context}"


def read_models() -> list[ModelKey]:
    keys = []
    for projection in all_projections():
        if isinstance(projection, OpsProjection):
            store = "redis"
        elif isinstance(projection, SqlProjection):
            store = "postgres"
        else:
            continue
        for context in projection.contexts:
            keys.append(ModelKey(store, projection.name, projection.version, context))
    return keys


# --------------------------------------------------------------------------------------------
# the stack as subprocesses


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class StackConfig:
    pg: str  # base URL, no database
    redis_url: str
    nats_url: str
    namespace: str
    db_prefix: str = DB_PREFIX
    jwks_url: str = ""
    """The JWKS the services trust (bench_auth.trusted_identity)."""
    workers: int = 1
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="strata-fan-")))
    extra_env: dict[str, str] = field(default_factory=dict)

    def db(self, role: str) -> str:
        return f"{self.db_prefix}_{role}"

    def url(self, role: str) -> str:
        return f"{self.pg}/{self.db(role)}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            **{c.database_url_variable: self.url(c.name) for c in REGISTRY},
            STRATA_READ_DATABASE_URL=self.url("read"),
            STRATA_REDIS_URL=self.redis_url,
            STRATA_NATS_URL=self.nats_url,
            STRATA_STREAM_NAMESPACE=self.namespace,
            STRATA_LOG_LEVEL=env.get("STRATA_LOG_LEVEL", "warning"),
            STRATA_WEB_WORKERS=str(self.workers),
            **unthrottled(env),
        )
        if self.jwks_url:
            env["STRATA_JWKS_URL"] = self.jwks_url
        env.update(self.extra_env)
        return env


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every fan-out bench shares: servers, isolation, output."""
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the strata processes (repeatable), e.g. STRATA_..._SIZE=..",
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and streams")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and profiles")
    parser.add_argument("--json", action="store_true", help="print one JSON document only")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON report here")


def config_of_arguments(
    args: argparse.Namespace, name: str, defaults: Mapping[str, str] | None = None
) -> StackConfig:
    """The stack of a bench run from the options of `add_stack_arguments` (and `--db-prefix`):
    a stream namespace of its own (`bench<name>…`), logs in `--out` or a new temporary folder,
    and the processes' environment `defaults` overridden by `--env`."""
    out = args.out or Path(tempfile.mkdtemp(prefix=f"strata-{name}-"))
    out.mkdir(parents=True, exist_ok=True)
    return StackConfig(
        pg=args.pg.rstrip("/"),
        redis_url=f"{args.redis.rstrip('/')}/{args.redis_db}",
        nats_url=args.nats,
        namespace=f"bench{name}{uuid.uuid4().hex[:8]}",
        db_prefix=args.db_prefix,
        log_dir=out,
        extra_env={**(defaults or {}), **dict(item.split("=", 1) for item in args.env)},
    )


def recreate_databases(config: StackConfig, roles: Iterable[str]) -> None:
    for role in roles:
        recreate_database(config.pg, config.db(role))


def drop_databases(config: StackConfig, roles: Iterable[str]) -> None:
    with psycopg.connect(admin_url(config.pg), autocommit=True) as conn:
        for role in roles:
            conn.execute(f'DROP DATABASE IF EXISTS "{config.db(role)}" WITH (FORCE)')


def backend_pids(config: StackConfig) -> set[int]:
    """The PostgreSQL backends serving the stack's databases now."""
    with psycopg.connect(admin_url(config.pg), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname LIKE %s",
            (config.db_prefix.replace("_", r"\_") + r"\_%",),
        ).fetchall()
    return {pid for (pid,) in rows}


def flush_redis(url: str) -> None:
    from redis import Redis  # noqa: PLC0415

    client = Redis.from_url(url)
    try:
        flush_redis_database(client)
    finally:
        client.close()


def spawn(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path) -> Service:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # its own session: we signal exactly this group at the end
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Service(name, process, port, log_path)


SIMULATORS = {"payment-provider": "STRATA_PAYMENT_PROVIDER_URL", "carrier": "STRATA_CARRIER_URL"}
"""The providers the sagas of placed orders call: simulators, run beside the stack so that the
sagas complete (without them every saga waited for its authorization's deadline, then
cancelled its order, retrying against a refused connection meanwhile)."""


def start_simulator(config: StackConfig, name: str) -> Service:
    """The simulator `name`, its ledger a new file beside the run's logs (not the repository's
    var/simulators/, which `strata` and other runs share)."""
    port = free_port()
    command = [venv_script(f"strata-{name}"), "--host", HOST, "--port", str(port)]
    ledger = config.log_dir / f"{name}.ledger.sqlite"
    for stale in (ledger, *(ledger.with_name(f"{ledger.name}{end}") for end in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    env = config.env() | {f"STRATA_{name.upper().replace('-', '_')}_LEDGER": str(ledger)}
    service = spawn(name, command, env, port, config.log_dir)
    config.extra_env[SIMULATORS[name]] = f"http://{HOST}:{port}"
    return service


def start_write_api(config: StackConfig) -> Service:
    port = free_port()
    env = config.env() | {"STRATA_HOST": HOST, "STRATA_PORT": str(port)}
    return spawn("write-api", [venv_script("strata-write-api")], env, port, config.log_dir)


def start_relay(config: StackConfig, context: str) -> Service:
    port = free_port()
    env = config.env() | {"STRATA_RELAY_HOST": HOST, "STRATA_RELAY_PORT": str(port)}
    command = [venv_script("strata-relay"), "--context", context]
    return spawn(f"relay-{context}", command, env, port, config.log_dir)


def start_projector(config: StackConfig, name: str = "projector") -> Service:
    port = free_port()
    env = config.env() | {"STRATA_PROJECTOR_HOST": HOST, "STRATA_PROJECTOR_PORT": str(port)}
    return spawn(name, [venv_script("strata-projector")], env, port, config.log_dir)


def wait_ready(service: Service, timeout: float = 60.0, path: str = "/readyz") -> None:
    request = loadgen.request_bytes("GET", path, f"{HOST}:{service.port}")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}\n{service.log_tail()}"
            )
        try:
            response = loadgen.run(lambda: loadgen.fetch(HOST, service.port, request, 2.0))
        except (OSError, TimeoutError, EOFError):
            response = None
        if response is not None:
            if response.status == 200:
                return
            last = f"{response.status} {response.body[:300]!r}"
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} was not ready within {timeout:g} s: {last}")


def stop_service(service: Service, timeout: float = 30.0) -> None:
    stop_process_group(service.process, service.name, timeout)


async def delete_streams(nats_url: str, names: Iterable[str]) -> None:
    import nats  # noqa: PLC0415
    from nats.js.errors import NotFoundError  # noqa: PLC0415

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


def stream_names(namespace: str) -> list[str]:
    return [f"{namespace.upper()}_ES_{context.upper()}" for context in CONTEXTS]
