"""A NATS JetStream cluster of `nats-server` processes on one host: each node's command line
and the clients' URL list. `scripts/stack` runs one under its supervisor when
``STRATA_STACK_NATS_CLUSTER=1``; the tests run one on free ports (tests/support/nats_cluster.py).

Three nodes (`nats-1` … `nats-3`) on loopback, each with its own client port, route port,
monitoring port (`/healthz`, `/jsz`, `/connz`) and JetStream folder, every node soliciting routes
to the others. Streams are replicated (``STRATA_STREAM_REPLICAS=3``): a publish is acknowledged
once two of the three nodes hold it, and a stream keeps serving while any two nodes run. Clients
are given every node's URL (``STRATA_NATS_URL`` is comma-separated), so a client whose node dies
reconnects to another.

`python -m eventlog.nats_cluster COMMAND` prints what scripts/stack needs:

- `processes DATA_DIR`: the supervisor's `NAME=COMMAND` argument of each node, its JetStream
  store under DATA_DIR/<node>;
- `urls`: the clients' `STRATA_NATS_URL` (the nodes' URLs, comma-separated).

Client ports count from ``STRATA_STACK_NATS_PORT`` (4223, so 4223 to 4225, beside a local server
on the default 4222), route ports from ``STRATA_STACK_NATS_ROUTE_PORT`` (6223), monitoring ports
from ``STRATA_STACK_NATS_MONITOR_PORT`` (8223).
"""

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLUSTER_NAME = "strata"
NODES = 3
HOST = "127.0.0.1"
CLIENT_PORT = 4223
ROUTE_PORT = 6223
MONITOR_PORT = 8223
PROG = "python -m eventlog.nats_cluster"
USAGE = f"usage: {PROG} processes DATA_DIR | urls"


@dataclass(frozen=True)
class ClusterNode:
    name: str
    client_port: int
    route_port: int
    monitor_port: int
    host: str = HOST

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def route(self) -> str:
        return f"nats://{self.host}:{self.route_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"


@dataclass(frozen=True)
class NatsCluster:
    """The nodes of one cluster and how each is started."""

    nodes: tuple[ClusterNode, ...]
    name: str = CLUSTER_NAME

    @property
    def client_urls(self) -> str:
        """Every node's client URL, comma-separated: the value of ``STRATA_NATS_URL``."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def command(self, node: ClusterNode, data_dir: Path, binary: str = "nats-server") -> list[str]:
        """The command line of `node`, its JetStream store in `data_dir`/<node name>."""
        routes = ",".join(other.route for other in self.nodes if other != node)
        return [
            *(binary, "--jetstream", "--store_dir", str(data_dir / node.name)),
            *("--server_name", node.name, "--addr", node.host, "--port", str(node.client_port)),
            *("--http_port", str(node.monitor_port)),
            *("--cluster_name", self.name, "--cluster", node.route, "--routes", routes),
        ]


def loopback_cluster(ports: Sequence[tuple[int, int, int]]) -> NatsCluster:
    """Nodes `nats-1`, `nats-2`, … on loopback, with these (client, route, monitoring) ports."""
    return NatsCluster(
        tuple(ClusterNode(f"nats-{i}", *node_ports) for i, node_ports in enumerate(ports, 1))
    )


def stack_cluster() -> NatsCluster:
    """The cluster of scripts/stack, its ports counted from STRATA_STACK_NATS_PORT, …"""
    client, route, monitor = (
        _first_port(f"STRATA_STACK_NATS_{kind}PORT", default)
        for kind, default in (("", CLIENT_PORT), ("ROUTE_", ROUTE_PORT), ("MONITOR_", MONITOR_PORT))
    )
    return loopback_cluster([(client + i, route + i, monitor + i) for i in range(NODES)])


def _first_port(variable: str, default: int) -> int:
    """The variable's port, the first of NODES; raises ValueError naming it if it is none."""
    value = os.environ.get(variable, str(default))
    if not value.isdecimal() or not 0 < int(value) <= 65536 - NODES:
        raise ValueError(f"{variable}={value!r} is not a port")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        cluster = stack_cluster()
    except ValueError as error:
        sys.exit(f"{PROG}: {error}")
    match arguments:
        case ["processes", data_dir]:
            for node in cluster.nodes:
                print(f"{node.name}={shlex.join(cluster.command(node, Path(data_dir)))}")
        case ["urls"]:
            print(cluster.client_urls)
        case _:
            sys.exit(USAGE)


if __name__ == "__main__":
    main()
