"""Rate-limit hits of concurrent requests sent to Redis together: one round trip per loop turn.

Every rate-limited request costs one hit in Redis (the `limits` library's Lua script of its
strategy), and awaiting a round trip of its own costs each request the connection checkout, the
write, the wake-up and the parse. `PipelinedRedisStorage` is `limits`' own Redis storage with
its two hits (`acquire_entry` of the moving window, `incr` of the fixed window) queued instead:
the hits made while the event loop runs one turn of callbacks (the requests that arrived
together) leave in one pipeline after that turn (a hit alone leaves as the library sends it),
each with the script, keys and arguments the library gives it, timestamped when it was made.
Each caller gets its own script's answer, or its error, which the storage wraps in
`StorageError` as the library does; so the strategies, their keys and their semantics stay the
library's, and so does what the caller does on an error (fail open, the breaker). A caller that
stops waiting (its timeout) leaves its hit in the batch: it is counted, as a hit already sent
would be.

The scripts are called by their SHA; should Redis have lost them (a restart, `SCRIPT FLUSH`),
the hits that met `NOSCRIPT` are sent again one by one through the library's script call, which
loads the script first.
"""

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Arguments = Sequence[str | int | float]


@dataclass(frozen=True, slots=True)
class _Hit:
    script: AsyncScript
    keys: list[str]
    arguments: Arguments
    answer: "asyncio.Future[Any]"


class ScriptBatch:
    """Script calls made during one turn of the event loop, sent as one pipeline after it."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queued: list[_Hit] = []
        self._sending: set[asyncio.Task[None]] = set()  # strong references until done
        self.pipelines = 0  # sent so far; with `calls`, how much batching there was
        self.calls = 0

    def call(self, script: AsyncScript, keys: list[str], arguments: Arguments) -> Awaitable[Any]:
        """The script's answer once the batch this call joins has been sent."""
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._send_queued)  # after the callbacks of this turn
        answer: asyncio.Future[Any] = loop.create_future()
        self._queued.append(_Hit(script, keys, arguments, answer))
        return answer

    def _send_queued(self) -> None:
        hits, self._queued = self._queued, []
        task = asyncio.ensure_future(self._send(hits))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, hits: list[_Hit]) -> None:
        self.pipelines += 1
        self.calls += len(hits)
        if len(hits) == 1:  # alone: a pipeline would only add its own bookkeeping
            _settle(hits[0].answer, await _one_by_one(hits[0]))
            return
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for hit in hits:
                    pipeline.evalsha(hit.script.sha, len(hit.keys), *hit.keys, *hit.arguments)
                answers = await pipeline.execute(raise_on_error=False)
        except Exception as error:  # noqa: BLE001 - every caller gets it
            for hit in hits:
                _settle(hit.answer, error)
            return
        for hit, sent in zip(hits, answers, strict=True):
            answer = await _one_by_one(hit) if isinstance(sent, NoScriptError) else sent
            _settle(hit.answer, answer)


async def _one_by_one(hit: _Hit) -> Any:
    """The library's own script call (which loads a script Redis does not know): its answer,
    or its error."""
    try:
        return await hit.script(hit.keys, hit.arguments)
    except Exception as error:  # noqa: BLE001 - handed to the caller
        return error


def _settle(answer: "asyncio.Future[Any]", outcome: Any) -> None:
    """Hand the caller its script's answer, or raise it its error."""
    if answer.done():  # the caller stopped waiting
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


class PipelinedRedisStorage(RedisStorage):
    """`limits`' Redis storage (redis-py) whose hits go through a `ScriptBatch`."""

    STORAGE_SCHEME = []  # noqa: RUF012 - under no URI scheme: built by the rate limits

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, implementation="redispy", **options)
        self.batch = ScriptBatch(self.bridge.get_connection())  # type: ignore[attr-defined]

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        script = self.bridge.lua_acquire_moving_window  # type: ignore[attr-defined]
        keys = [self.bridge.prefixed_key(key)]
        return bool(await self.batch.call(script, keys, [time.time(), limit, expiry, amount]))

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        script = self.bridge.lua_incr_expire  # type: ignore[attr-defined]
        keys = [self.bridge.prefixed_key(key)]
        return int(await self.batch.call(script, keys, [expiry, amount]))
