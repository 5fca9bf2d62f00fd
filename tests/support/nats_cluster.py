"""A three-node NATS JetStream cluster on free loopback ports (eventlog/nats_cluster.py), for the
tests that kill a node: each node a throwaway server of its own (tests/support/servers.py), whose
crash is a SIGKILL. It asks the JetStream API which node leads a stream
(`$JS.API.STREAM.INFO.<stream>`, `cluster.leader`), moves that leadership
(`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`) and reads which clients a node serves (its monitoring
port's `/connz`)."""

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from eventlog.nats_cluster import ClusterNode, NatsCluster, loopback_cluster
from tests.support.nats import probe
from tests.support.processes import free_port
from tests.support.servers import ProcessServer, require_server_binaries, wait_until

NODES = 3
REQUEST_SECONDS = 2.0


class ClusterNodeServer(ProcessServer):
    def __init__(self, cluster: NatsCluster, node: ClusterNode, root: Path) -> None:
        super().__init__(root / node.name)
        self.port = node.client_port
        self.node = node
        self._cluster = cluster
        self._root = root

    def command(self) -> list[str]:
        return self._cluster.command(self.node, self._root)

    def answers(self) -> bool:
        """It serves JetStream requests: the cluster has elected its meta leader."""
        try:
            asyncio.run(probe(self.node.url))
        except (TimeoutError, OSError, nats.errors.Error):
            return False
        return True

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


@dataclass(frozen=True)
class RunningCluster:
    layout: NatsCluster
    servers: dict[str, ClusterNodeServer]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated, as the clients' STRATA_NATS_URL."""
        return self.layout.client_urls

    def live_urls(self) -> list[str]:
        return [s.node.url for s in self.servers.values() if s.running]

    def kill(self, name: str) -> None:
        """SIGKILL one node."""
        self.servers[name].crash()

    def restart(self, name: str) -> None:
        """Start a killed node again, on its store; returns once it serves JetStream."""
        self.servers[name].start()

    def stream_info(self, stream: str) -> dict[str, Any]:
        """The JetStream API's answer on `stream` (`config`, `state`, `cluster`), raw."""
        return self._request(f"$JS.API.STREAM.INFO.{stream}")

    def stream_leader(self, stream: str) -> str | None:
        """The node leading `stream` now, as a running node tells (None during an election)."""
        leader = self.stream_info(stream).get("cluster", {}).get("leader")
        return str(leader) if leader else None

    def replicated(self, stream: str) -> bool:
        """Every node holds the stream and is current with its leader."""
        try:
            cluster = self.stream_info(stream).get("cluster", {})
        except (TimeoutError, OSError, nats.errors.Error):
            return False
        replicas = cluster.get("replicas") or []
        followers_current = all(r.get("current") and not r.get("offline") for r in replicas)
        return bool(cluster.get("leader")) and len(replicas) == NODES - 1 and followers_current

    def step_down(self, stream: str) -> None:
        """Ask the stream's leader to hand over to another node."""
        self._request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}")

    def lead_on(self, stream: str, node: str, attempts: int = 20) -> None:
        """Step the stream's leaders down until `node` leads it."""
        for _ in range(attempts):
            leader = self.wait_for_leader(stream)
            if leader == node:
                return
            wait_until(lambda: self._stepped_down(stream), 30, f"{leader} steps down")
            self.wait_for_leader(stream, other_than=leader)
        raise AssertionError(f"{node} did not come to lead {stream} in {attempts} step-downs")

    def _stepped_down(self, stream: str) -> bool:
        try:
            self.step_down(stream)
        except (TimeoutError, OSError, nats.errors.Error):
            return False  # a leader just elected may not answer yet
        return True

    def wait_for_leader(self, stream: str, *, other_than: str = "", seconds: float = 60) -> str:
        """The stream's leader, once there is one (other than `other_than`)."""
        found: list[str] = []

        def elected() -> bool:
            try:
                leader = self.stream_leader(stream)
            except (TimeoutError, OSError, nats.errors.Error):
                return False  # no answer during an election
            found[:] = [leader] if leader and leader != other_than else []
            return bool(found)

        wait_until(elected, seconds, f"{stream} has a leader other than {other_than!r}")
        return found[0]

    def client_names(self, node: str) -> set[str]:
        """The names of the clients connected to `node` (its `/connz`)."""
        monitor = self.layout.node(node).monitor_url
        connections = httpx.get(f"{monitor}/connz", timeout=5).json()["connections"] or []
        return {str(connection.get("name", "")) for connection in connections}

    def _request(self, subject: str) -> dict[str, Any]:
        async def ask() -> dict[str, Any]:
            nc = await _connect(self.live_urls())
            try:
                reply = await nc.request(subject, b"", timeout=REQUEST_SECONDS)
            finally:
                await nc.close()
            answer = json.loads(reply.data)
            if "error" in answer:
                raise nats.errors.Error(f"{subject}: {answer['error']}")
            return dict(answer)

        return asyncio.run(ask())


async def _connect(urls: list[str]) -> NatsClient:
    return await asyncio.wait_for(
        nats.connect(urls, connect_timeout=1, allow_reconnect=False), REQUEST_SECONDS * 2
    )


@contextmanager
def nats_cluster() -> Iterator[RunningCluster]:
    """Three clustered nodes on free ports, each on a folder of its own; killed and deleted at
    the end. Returns once every node serves JetStream."""
    require_server_binaries("nats-server")
    root = Path(tempfile.mkdtemp(prefix="strata-nats-cluster-"))
    layout = loopback_cluster([(free_port(), free_port(), free_port()) for _ in range(NODES)])
    try:
        with ExitStack() as stack:
            servers = {}
            for node in layout.nodes:
                (root / node.name).mkdir()
                servers[node.name] = server = ClusterNodeServer(layout, node, root)
                stack.callback(server.close)
                server.launch()  # all at once: none answers before a quorum runs
            for server in servers.values():
                server.wait_up()
            yield RunningCluster(layout, servers)
    finally:
        shutil.rmtree(root, ignore_errors=True)
