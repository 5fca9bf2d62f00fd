"""Throwaway PostgreSQL, NATS JetStream and Redis servers on free loopback ports, for the tests
that take a server down and bring it back (outages). The shared servers on the default ports
must never be stopped: other tests use them at the same time.

Each server keeps its data in a folder of its own, so a hard stop (`pg_ctl stop -m immediate`,
SIGKILL) followed by a start is a crash and a recovery, as in production. Redis can also come
back with less, as deployments without an append-only file do: empty (no persistence) or from
an older RDB snapshot. When a binary is missing, the tests fail under STRATA_REQUIRE_SERVICES=1
(CI) and are skipped elsewhere.
"""

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import nats.errors
import psycopg
import pytest
import redis
from psycopg.sql import SQL, Identifier

from tests.support.nats import probe
from tests.support.postgres import services_required
from tests.support.processes import free_port

POSTGRES_BIN = Path(os.environ.get("STRATA_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
"""Where initdb, pg_ctl and postgres are (STRATA_TEST_POSTGRES_BIN to override)."""
START_SECONDS = 60.0


def _binaries() -> dict[str, str | None]:
    return {
        "initdb": shutil.which("initdb", path=str(POSTGRES_BIN)),
        "pg_ctl": shutil.which("pg_ctl", path=str(POSTGRES_BIN)),
        "redis-server": shutil.which("redis-server"),
        "nats-server": shutil.which("nats-server"),
    }


def require_server_binaries(*names: str) -> dict[str, str]:
    """The server binaries' paths (`names`, else all); fail (CI) or skip (laptop) if one is
    missing."""
    found = {name: path for name, path in _binaries().items() if name in names or not names}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        message = f"cannot run throwaway servers: {', '.join(missing)} not found"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return {name: str(path) for name, path in found.items()}


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:g} s")
        time.sleep(0.1)


class Server(ABC):
    """One server process over a data folder that survives its stops."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()

    @abstractmethod
    def start(self) -> None:
        """Start it and return once it answers."""

    @abstractmethod
    def crash(self) -> None:
        """Stop it the hard way (no shutdown work); it can be started again."""

    def close(self) -> None:
        self.crash()


class ProcessServer(Server):
    """A server run as a child process: a crash is SIGKILL."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self._process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def answers(self) -> bool: ...

    def start(self) -> None:
        self.launch()
        self.wait_up()

    def launch(self) -> None:
        """Start the process without waiting for it to answer."""
        log = (self.folder / "server.log").open("ab")
        self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)

    def wait_up(self) -> None:
        wait_until(self._up, START_SECONDS, f"{self.command()[0]} on port {self.port} answers")

    def _up(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            log = self.folder / "server.log"
            last = log.read_text(errors="replace").strip().splitlines()[-5:]
            pytest.fail(f"{self.command()[0]} exited; the end of {log}:\n" + "\n".join(last))
        return self.answers()

    def crash(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None


class RedisServer(ProcessServer):
    """Redis with an append-only file, so its data outlives a crash as a production one's does;
    `restart_from` brings it back with less, as one without that file comes back."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self._data = folder
        self._restarts = itertools.count(1)
        self._from_snapshot = False

    def command(self) -> list[str]:
        appendonly = "no" if self._from_snapshot else "yes"
        return [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--dir", str(self._data), "--save", "", "--appendonly", appendonly),
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def answers(self) -> bool:
        with self.client() as client:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

    def snapshot(self) -> Path:
        """An RDB file of what Redis holds now (`SAVE`), kept aside."""
        with self.client() as client:
            client.save()
        kept = self.folder / f"snapshot-{next(self._restarts)}.rdb"
        shutil.copyfile(self._data / "dump.rdb", kept)
        return kept

    def restart_from(self, snapshot: Path | None) -> None:
        """Crash it and start it on a new data folder holding only `snapshot` (None: nothing),
        as a Redis without an append-only file restarts; then it keeps one again."""
        self.crash()
        self._data = self.folder / f"run-{next(self._restarts)}"
        self._data.mkdir()
        if snapshot is not None:
            shutil.copyfile(snapshot, self._data / "dump.rdb")
        self._from_snapshot = True
        try:
            self.start()
        finally:
            self._from_snapshot = False
        with self.client() as client:
            client.config_set("appendonly", "yes")
        wait_until(self._appending, START_SECONDS, "Redis writes its append-only file again")

    def _appending(self) -> bool:
        with self.client() as client:
            info = client.info("persistence")
        return bool(info["aof_enabled"]) and not info["aof_rewrite_in_progress"]


class NatsServer(ProcessServer):
    def command(self) -> list[str]:
        store = self.folder / "jetstream"
        return ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(store)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        try:
            asyncio.run(probe(self.url))
        except (TimeoutError, OSError, nats.errors.Error):
            return False
        return True


class PostgresServer(Server):
    """A PostgreSQL cluster of its own (trust authentication, user postgres). Run as root, the
    server runs as the `postgres` user, which then owns the folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._data = folder / "data"
        self._create()

    def _create(self) -> None:
        """Make the cluster's data folder (trust also admits replication connections, so a
        streaming replica can be made of it: tests/support/replica.py)."""
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, program: str, *arguments: str) -> None:
        command = [*self._as_owner, str(POSTGRES_BIN / program), *arguments]
        subprocess.run(command, check=True, capture_output=True, timeout=START_SECONDS)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
            " -c fsync=off -c max_connections=200 -c wal_level=replica"
        )
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "start", "-D", str(self._data), "-w", "-l", log, "-o", options)

    def crash(self) -> None:
        with suppress(subprocess.CalledProcessError):  # not running
            self._run("pg_ctl", "stop", "-D", str(self._data), "-m", "immediate", "-w")

    def create_databases(self, *names: str) -> dict[str, str]:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            for name in names:
                conn.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))
        return {name: self.url(name) for name in names}


@dataclass(frozen=True)
class Servers:
    postgres: PostgresServer
    nats: NatsServer
    redis: RedisServer

    def by_name(self, name: str) -> Server:
        server: Server = getattr(self, name)
        return server


@contextmanager
def throwaway_servers() -> Iterator[Servers]:
    """PostgreSQL, NATS and Redis on free ports, each on a data folder of its own; stopped and
    deleted at the end."""
    require_server_binaries()
    root = Path(tempfile.mkdtemp(prefix="strata-servers-"))
    os.chmod(root, 0o755)  # the postgres user must reach its folder
    try:
        with ExitStack() as stack:
            folders = {name: root / name for name in ("postgres", "nats", "redis")}
            for folder in folders.values():
                folder.mkdir()
            servers = Servers(
                PostgresServer(folders["postgres"]),
                NatsServer(folders["nats"]),
                RedisServer(folders["redis"]),
            )
            for server in (servers.postgres, servers.nats, servers.redis):
                stack.callback(server.close)
                server.start()
            yield servers
    finally:
        shutil.rmtree(root, ignore_errors=True)
