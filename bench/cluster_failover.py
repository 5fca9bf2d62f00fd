"""JetStream cluster failover: SIGKILL of an R3 stream's leader under a steady publish load.

Starts the three-node loopback cluster of `eventlog/nats_cluster.py` (nats-server on free ports,
stores in a temporary folder) and one stream as the relay makes it (`STRATA_STREAM_REPLICAS=3`).
A publisher sends `--rate` messages a second as the relay does: each with `Nats-Msg-Id` and
chained with `Nats-Expected-Last-Msg-Id`, and after a failure (no responders while the stream has
no leader, an ack timeout) it sends the *same* message again every `--retry` seconds until it is
acknowledged. Each round kills the stream's leader and measures, from the kill:

- **elected**: another node answers `$JS.API.STREAM.INFO` with a new `cluster.leader`;
- **paused**: the longest time between two acknowledgements of the publisher around the kill:
  how long publishing stopped, as the relay sees the failover.

The election is the raw limit: the ratio of the medians, paused / elected, says what the
publisher's retries add to it (1.0: nothing; below 1 when the kill lands between two publishes).

The killed node is then started again and rejoins before the next round. At the end the stream
must hold every message id once, in order: the lost and duplicated counts are printed (both 0).

    .venv/bin/python bench/cluster_failover.py                  # 5 rounds at 200 msg/s
    .venv/bin/python bench/cluster_failover.py --rounds 10 --json

Needs `nats-server` on the PATH. Exit 0; 1 if a message was lost or duplicated; 2 if the cluster
did not form or a round did not recover within 60 s.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contexts.settings import Settings
from eventlog.jetstream import context_stream, ensure_stream
from eventlog.nats_cluster import NatsCluster, loopback_cluster

CONTEXT = "bench"
DEADLINE = 60.0
FAILURES = (nats.errors.Error, APIError, TimeoutError, OSError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Publisher:
    """The relay's way of publishing: chained ids, the same message again until it is acked."""

    js: JetStreamContext
    subject: str
    retry: float
    sent: int = 0
    acks: list[float] = field(default_factory=list)

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._publish(self.sent + 1)
            self.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)

    async def _publish(self, n: int) -> None:
        headers = {"Nats-Msg-Id": f"m-{n}"}
        if n > 1:
            headers["Nats-Expected-Last-Msg-Id"] = f"m-{n - 1}"
        while True:
            try:
                await self.js.publish(self.subject, b"x", headers=headers, timeout=2)
            except FAILURES:
                await asyncio.sleep(self.retry)
                continue
            self.acks.append(time.monotonic())
            return


class LocalCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout: NatsCluster = loopback_cluster(
            [(free_port(), free_port(), free_port()) for _ in range(3)]
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        command = self.layout.command(self.layout.node(name), self.root)
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        self.processes[name].kill()
        self.processes[name].wait()

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()


async def connect(urls: list[str]) -> NatsClient:
    """A connection that retries its servers without end and keeps quiet about dead nodes."""

    async def quiet(error: Exception) -> None:
        pass

    return await nats.connect(
        urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet
    )


async def leader_of(nc: NatsClient, stream: str) -> str | None:
    """The stream's leader as the node of `nc` tells (None while it cannot say)."""
    try:
        info = await nc.jetstream(timeout=0.5).stream_info(stream)
    except FAILURES:
        return None
    return info.cluster.leader if info.cluster else None


async def all_current(nc: NatsClient, stream: str) -> bool:
    """Every replica of the stream is online and current."""
    try:
        info = await nc.jetstream(timeout=0.5).stream_info(stream)
    except FAILURES:
        return False
    replicas = (info.cluster.replicas or []) if info.cluster else []
    return len(replicas) == 2 and all(r.current and not r.offline for r in replicas)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not within {DEADLINE:g} s")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Round:
    killed: str
    elected: float
    paused: float


async def one_round(
    cluster: LocalCluster, watchers: dict[str, NatsClient], publisher: Publisher, stream: str
) -> Round:
    await asyncio.sleep(1.0)  # a steady load before the kill
    killed = await leader_of(next(iter(watchers.values())), stream)
    assert killed is not None
    survivor = next(nc for name, nc in watchers.items() if name != killed)
    acked = len(publisher.acks)
    killed_at = time.monotonic()
    cluster.kill(killed)

    async def elected() -> bool:
        return await leader_of(survivor, stream) not in (None, killed)

    await wait_for(elected, "a new leader")
    elected_after = time.monotonic() - killed_at
    await wait_for(lambda: _acked_after(publisher, elected_after + killed_at), "a publish")
    acks = publisher.acks[max(acked - 1, 0) :]
    paused = max(later - earlier for earlier, later in itertools.pairwise(acks))
    cluster.start(killed)
    await wait_for(lambda: all_current(survivor, stream), f"{killed} rejoins")
    return Round(killed, elected_after, paused)


async def _acked_after(publisher: Publisher, moment: float) -> bool:
    return publisher.acks[-1] > moment


async def stored_ids(nc: NatsClient, stream: str) -> list[str]:
    js = nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    ids = []
    for seq in range(1, last + 1):
        message = await js.get_msg(stream, seq)
        ids.append(str((message.headers or {})["Nats-Msg-Id"]))
    return ids


async def main(arguments: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="strata-bench-cluster-"))
    cluster = LocalCluster(root)
    watchers: dict[str, NatsClient] = {}
    try:
        for node in cluster.layout.nodes:
            cluster.start(node.name)
        for node in cluster.layout.nodes:
            watchers[node.name] = await connect([node.url])
        settings = Settings(stream_replicas=3)
        stream = context_stream(CONTEXT, settings)

        async def created() -> bool:
            try:
                await ensure_stream(watchers["nats-1"].jetstream(), CONTEXT, settings)
            except FAILURES:
                return False
            return True

        await wait_for(created, "the cluster forms and the R3 stream is created")
        client = await connect(cluster.layout.client_urls.split(","))
        publisher = Publisher(client.jetstream(), f"{stream.subject_root}.x", arguments.retry)
        stop = asyncio.Event()
        load = asyncio.create_task(publisher.run(arguments.rate, stop))
        rounds = []
        for number in range(1, arguments.rounds + 1):
            found = await one_round(cluster, watchers, publisher, stream.name)
            rounds.append(found)
            if not arguments.json:
                print(
                    f"round {number}: killed {found.killed}; new leader after"
                    f" {found.elected:.2f} s, publishing paused {found.paused:.2f} s"
                )
        stop.set()
        await load
        ids = await stored_ids(watchers[rounds[-1].killed], stream.name)
        report(arguments, rounds, ids, publisher.sent)
        await client.close()
        expected = [f"m-{n}" for n in range(1, publisher.sent + 1)]
        return 0 if ids == expected else 1
    finally:
        for nc in watchers.values():
            with contextlib.suppress(*FAILURES):
                await nc.close()
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


def report(arguments: argparse.Namespace, rounds: list[Round], ids: list[str], sent: int) -> None:
    elected = [r.elected for r in rounds]
    paused = [r.paused for r in rounds]
    summary = {
        "rounds": len(rounds),
        "rate": arguments.rate,
        "elected_median_s": round(statistics.median(elected), 2),
        "elected_max_s": round(max(elected), 2),
        "paused_median_s": round(statistics.median(paused), 2),
        "paused_max_s": round(max(paused), 2),
        "paused_to_elected": round(statistics.median(paused) / statistics.median(elected), 2),
        "published": sent,
        "lost": len({f"m-{n}" for n in range(1, sent + 1)} - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
    }
    if arguments.json:
        print(json.dumps(summary))
        return
    print(
        f"{len(rounds)} rounds at {arguments.rate:g} msg/s: new leader after median"
        f" {summary['elected_median_s']} s (max {summary['elected_max_s']} s); publishing paused"
        f" median {summary['paused_median_s']} s (max {summary['paused_max_s']} s), ratio paused"
        f" / elected {summary['paused_to_elected']};"
        f" {sent} published, {summary['lost']} lost, {summary['duplicated']} duplicated"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="messages a second")
    parser.add_argument("--retry", type=float, default=0.25, help="seconds between retries")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if shutil.which("nats-server") is None:
        sys.exit("nats-server is not on the PATH")
    sys.exit(asyncio.run(main(parse())))
