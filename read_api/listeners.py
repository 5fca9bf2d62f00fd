"""Listeners that turn projector announcements into `CheckpointWatch` wake-ups (stack mode).

Each holds one connection: Redis `SUBSCRIBE rm:ckpt:db<n>` (n: the DB number of the Redis URL;
pub/sub is server-wide, so the channel names the DB) and PostgreSQL `LISTEN rm_ckpt`. The message
itself is not parsed: a notification only says "re-read the checkpoints". A lost connection is
re-made with backoff, and every (re)subscription wakes the waiters once, since announcements
made while disconnected are gone.

The Redis listener runs on a thread with the blocking client: redis-py's asyncio pub/sub can
swallow a task's cancellation (its read timeout turns the CancelledError into a retried
TimeoutError), which would hang shutdown. It stops promptly through a private channel.
"""

import asyncio
import contextlib
import logging
import threading
import uuid

import psycopg
import redis

from read_api.waiting import CheckpointWatch
from readmodels.checkpoints import CHECKPOINT_CHANNEL
from readmodels.keys import redis_channel_for_url

POSTGRES_CHANNEL = CHECKPOINT_CHANNEL
BACKOFF_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
HEALTH_CHECK_SECONDS = 10.0
"""A quiet subscription is checked (PING) this often, so a dead connection is noticed."""

log = logging.getLogger(__name__)


def backoff(failures: int) -> float:
    return BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]


class RedisListener:
    """`SUBSCRIBE rm:ckpt:db<n>` on a thread; `start`, then `stop` (blocking, bounded)."""

    def __init__(self, url: str, watch: CheckpointWatch) -> None:
        self._url = url
        self._watch = watch
        self.channel = redis_channel_for_url(url)
        self._stop_channel = f"{self.channel}:stop:{uuid.uuid4().hex}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rm-ckpt-redis", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with (
            contextlib.suppress(redis.RedisError, OSError),
            redis.Redis.from_url(self._url, socket_timeout=1, socket_connect_timeout=1) as client,
        ):
            client.publish(self._stop_channel, "stop")
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
            except (redis.RedisError, OSError) as error:
                if failures == 0:
                    log.warning("Redis checkpoint listener lost its connection: %s", error)
                self._watch.notify_threadsafe()
                self._stopping.wait(backoff(failures))
                failures += 1
            else:
                failures = 0

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self._url, socket_connect_timeout=2, health_check_interval=HEALTH_CHECK_SECONDS
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        with client, pubsub:
            pubsub.subscribe(self.channel, self._stop_channel)
            self._watch.notify_threadsafe()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                if message is not None and message["channel"] == self.channel.encode():
                    self._watch.notify_threadsafe()


async def listen_postgres(url: str, watch: CheckpointWatch) -> None:
    """`LISTEN rm_ckpt` until cancelled, reconnecting with backoff."""
    failures = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=2
            ) as conn:
                await conn.execute(f"LISTEN {POSTGRES_CHANNEL}")
                failures = 0
                watch.notify()
                async for _notify in conn.notifies():
                    watch.notify()
        except (psycopg.Error, OSError) as error:
            if failures == 0:
                log.warning("PostgreSQL checkpoint listener lost its connection: %s", error)
        watch.notify()
        await asyncio.sleep(backoff(failures))
        failures += 1
