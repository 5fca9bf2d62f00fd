"""Issue 11, item 5: the fan-out on a three-node JetStream cluster survives the loss of a stream's
leader. Users' write service, its relay and the projector run as real processes under the
supervisor against R3 streams, every node's URL given to each; commands flow; the node leading
the users' stream (which also serves the projector's connection) is killed with SIGKILL. Then,
with no action by a person: no process exited; the relay sent its page again with the same
message ids until a new leader was elected, without re-syncing; the projector reconnected; the
stream holds every event of the store once; and the read models equal a clean projection of the
store: no event lost, none applied twice. The stream's duplicate window is far longer than the
failover took. The killed node, started again, catches up with the stream.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import nats.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from contexts.settings import CONTEXTS, Settings
from eventlog.envelope import envelope_source
from eventlog.stores import build_services
from projections.catchup import project_log
from projections.models import all_projections
from projections.targets import stack_targets
from readmodels.keys import RedisLayout
from readmodels.sql import PostgresDatabase
from tests.support.auth import OPERATOR, JwksServer
from tests.support.dumps import differences, dump_read_models
from tests.support.nats import last_position, read_stream
from tests.support.nats_cluster import RunningCluster, nats_cluster
from tests.support.postgres import require_postgres, scratch_databases, url_settings, url_variables
from tests.support.processes import BIN, free_port, stop_process
from tests.support.read_models import require_redis, scratch_redis_database
from tests.support.servers import wait_until

USERS = "users"
STREAM = "ES_USERS"
PROCESSES = ("write-users", "relay-users", "projector")
LOAD_BEFORE, LOAD_AFTER = 40, 40
"""Commands accepted before the kill, and after the relay published again."""
SECONDS = 120.0
USERS_PROJECTIONS = [p for p in all_projections() if USERS in p.contexts]


@dataclass(frozen=True)
class Fanout:
    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    supervisor: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def ready(self, name: str) -> bool:
        try:
            return httpx.get(f"{self.url(name)}/readyz", timeout=3).status_code == 200
        except httpx.TransportError:
            return False

    def log(self, name: str) -> list[dict[str, object]]:
        lines = (self.logs / f"{name}.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def fanout(tmp_path: Path, trusted_identity: JwksServer) -> Iterator[tuple[Fanout, RunningCluster]]:
    with (
        nats_cluster() as cluster,
        scratch_databases(require_postgres(), *CONTEXTS, "read", "oracle") as urls,
        scratch_redis_database(require_redis()) as redis_url,
    ):
        ports = {name: free_port() for name in PROCESSES}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRATA_")},
            **url_variables({k: v for k, v in urls.items() if k != "oracle"}),
            "STRATA_ORACLE_URL": urls["oracle"],  # read by the test only
            "STRATA_REDIS_URL": redis_url,
            "STRATA_NATS_URL": cluster.url,
            "STRATA_STREAM_REPLICAS": "3",
            "STRATA_PROJECTOR_PORT": str(ports["projector"]),
            "STRATA_PROJECTOR_BATCH_SIZE": "32",
            **trusted_identity.settings(),
        }
        programs = [
            f"write-users=env STRATA_PORT={ports['write-users']}"
            f" {BIN}/strata-write-api --context {USERS}",
            f"relay-users=env STRATA_RELAY_PORT={ports['relay-users']}"
            f" {BIN}/strata-relay --context {USERS}",
            f"projector={BIN}/strata-projector",
        ]
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "runtime.supervisor", "--logs", str(tmp_path), *programs],
            env=env,
            stderr=(tmp_path / "supervisor.log").open("wb"),
        )
        running = Fanout(env, ports, tmp_path, supervisor)
        try:
            for name in PROCESSES:
                wait_until(partial(running.ready, name), SECONDS, f"{name} is ready")
            yield running, cluster
        finally:
            stop_process(supervisor)


class Registrations(threading.Thread):
    """A steady client: registers users and renames them, counting the answers."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self._api = httpx.Client(base_url=url, headers=OPERATOR, timeout=10)
        self._halt = threading.Event()
        self.answers: Counter[int] = Counter()
        self._users: list[str] = []

    def run(self) -> None:
        while not self._halt.wait(0.02):
            if len(self._users) % 3 == 2 or not self._users:
                email = f"u{uuid.uuid4().hex[:12]}@example.com"
                response = self._api.post("/users", json={"name": "Cluster", "email": email})
                if response.status_code == 201:
                    self._users.append(response.json()["id"])
            else:
                user = self._users[self.accepted() % len(self._users)]
                response = self._api.put(f"/users/{user}/name", json={"name": f"n{time.time()}"})
            self.answers[response.status_code] += 1

    def accepted(self) -> int:
        return sum(n for status, n in self.answers.items() if 200 <= status < 300)

    def wait_for(self, more: int) -> None:
        wanted = self.accepted() + more
        wait_until(lambda: self.accepted() >= wanted, SECONDS, f"{wanted} commands are accepted")

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        self._api.close()


def test_killing_the_stream_leader_loses_and_duplicates_nothing(
    fanout: tuple[Fanout, RunningCluster],
) -> None:
    stack, cluster = fanout
    # R3: a leader and two current followers (followers catch up after the fixture's start)
    wait_until(lambda: cluster.replicated(STREAM), SECONDS, "every node is current")
    leader = _projector_node(cluster)
    cluster.lead_on(STREAM, leader)
    load = Registrations(stack.url("write-users"))
    load.start()
    try:
        load.wait_for(LOAD_BEFORE)
        before = _last_seq(cluster)
        killed_at = time.monotonic()
        cluster.kill(leader)
        new_leader = cluster.wait_for_leader(STREAM, other_than=leader)
        elected = time.monotonic() - killed_at
        wait_until(
            lambda: _last_seq(cluster) > before,
            SECONDS,
            "the relay publishes again",
        )
        resumed = time.monotonic() - killed_at
        load.wait_for(LOAD_AFTER)
    finally:
        load.stop()
    print(
        f"\nleader {leader} killed: {new_leader} elected after {elected:.2f} s;"
        f" the relay stored again after {resumed:.2f} s"
    )

    assert new_leader != leader
    relayed = _relay_counters(stack)  # rode the election out by sending again, not re-syncing
    assert relayed["strata_relay_publish_retries"] > 0, relayed
    assert relayed["strata_relay_resyncs"] == 0, relayed
    assert set(load.answers) <= {200, 201}, load.answers  # the write side never needs NATS
    assert stack.supervisor.poll() is None
    assert " exited " not in (stack.logs / "supervisor.log").read_text()
    duplicate_window = cluster.stream_info(STREAM)["config"]["duplicate_window"] / 1e9
    assert duplicate_window > resumed * 10  # a re-publish after the failover is still dropped
    head = _assert_the_stream_holds_each_event_once(stack, cluster)
    _assert_the_projector_reconnected(stack, cluster, leader)
    _assert_read_models_equal_a_clean_projection(stack, head)
    cluster.restart(leader)
    wait_until(lambda: cluster.replicated(STREAM), SECONDS, f"{leader} is current again")


def _projector_node(cluster: RunningCluster) -> str:
    """The node serving the projector's connection."""
    for node in cluster.layout.nodes:
        if "strata-projector" in cluster.client_names(node.name):
            return node.name
    raise AssertionError("the projector is connected to no node")


def _relay_counters(stack: Fanout) -> dict[str, float]:
    """The users' relay's counters, by name (without `_total`)."""
    text = httpx.get(f"{stack.url('relay-users')}/metrics", timeout=5).text
    return {
        family.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.type == "counter"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def _last_seq(cluster: RunningCluster) -> int:
    """The stream's last sequence (-1 while no node answers: an election)."""
    try:
        return int(cluster.stream_info(STREAM)["state"]["last_seq"])
    except (TimeoutError, OSError, nats.errors.Error):
        return -1


def _settings(stack: Fanout) -> Settings:
    urls = {c: stack.env[f"STRATA_{c.upper()}_DATABASE_URL"] for c in CONTEXTS}
    return Settings(**url_settings(urls), group_commit=False)


def _assert_the_stream_holds_each_event_once(stack: Fanout, cluster: RunningCluster) -> int:
    """The stream holds the store's positions in order, each once; the store's head."""
    services = build_services(_settings(stack))
    try:
        recorder = services[USERS].recorder
        head = recorder.max_notification_id() or 0
        stored = [n.id for n in recorder.select_notifications(start=1, limit=head + 1)]
    finally:
        services.close()
    url = cluster.live_urls()[0]
    wait_until(lambda: last_position(url, STREAM) == head, SECONDS, "the relay caught up")
    assert [m.position for m in read_stream(url, STREAM)] == stored
    return head


def _assert_the_projector_reconnected(stack: Fanout, cluster: RunningCluster, killed: str) -> None:
    """Its connection was on the killed node: it reconnected to another one, attached the users'
    feed (the consumer of all of its projections, projections/feed.py) again, and is ready."""
    attached_again = f"feed proj_{USERS}_all attached "

    def reattached() -> bool:
        lines = [str(line["message"]) for line in stack.log("projector")]
        if "reconnected to NATS" not in lines:
            return False
        after = lines[lines.index("reconnected to NATS") :]
        return any(message.startswith(attached_again) for message in after)

    wait_until(reattached, SECONDS, "the projector reconnected and attached its users' feed again")
    wait_until(lambda: stack.ready("projector"), SECONDS, "the projector is ready")
    assert any(
        "strata-projector" in cluster.client_names(node.name)
        for node in cluster.layout.nodes
        if node.name != killed
    )


def _assert_read_models_equal_a_clean_projection(stack: Fanout, head: int) -> None:
    read_db = PostgresDatabase(stack.env["STRATA_READ_DATABASE_URL"])
    oracle_db = PostgresDatabase(stack.env["STRATA_ORACLE_URL"])
    redis = Redis.from_url(stack.env["STRATA_REDIS_URL"])
    services = build_services(_settings(stack))
    try:
        live = stack_targets(read_db, redis, projections=USERS_PROJECTIONS)
        wait_until(
            lambda: all(t.checkpoint(USERS).position == head for t in live),
            SECONDS,
            f"every users' read model reached position {head}",
        )
        oracle = stack_targets(
            oracle_db, redis, layout=RedisLayout(root="oracle"), projections=USERS_PROJECTIONS
        )
        project_log({USERS: envelope_source(services[USERS].recorder)}, oracle, until={USERS: head})
        expected, actual = dump_read_models(oracle), dump_read_models(live)
        assert actual == expected, differences(expected, actual)
    finally:
        services.close()
        redis.close()
        oracle_db.close()
        read_db.close()
