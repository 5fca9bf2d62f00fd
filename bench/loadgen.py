"""A cheap HTTP/1.1 load generator on asyncio raw streams.

It shares the machine's cores with the server under test and PostgreSQL, so every request costs
the client as little as possible: request bytes are built with a byte format (no HTTP library),
responses are parsed only as far as the status line and Content-Length, and every connection
is kept alive. It runs on uvloop when that is installed (uvicorn[standard] brings it).

Only 2xx answers count as successes; every other status, and every broken connection, is
counted as an error by its status (or exception name) and does not enter the latency figures.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

try:  # uvloop is cheaper per request than the default loop; optional
    import uvloop

    HAVE_UVLOOP = True
except ImportError:  # pragma: no cover - the default loop works too
    HAVE_UVLOOP = False

T = TypeVar("T")

# client index, sequence number within that client -> full request bytes
RequestFactory = Callable[[int, int], bytes]


class ProtocolError(Exception):
    """The server answered something this minimal client does not understand."""


@dataclass
class Response:
    status: int
    body: bytes


@dataclass
class LoadResult:
    clients: int
    seconds: float  # length of the measured window
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, 2xx only
    per_second: list[int] = field(default_factory=list)  # 2xx completions in each second
    warmup_ok: int = 0
    warmup_errors: int = 0
    sample_errors: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def error_ratio(self) -> float:
        total = self.ok + self.error_count
        return self.error_count / total if total else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of unsorted values (q in 0..100); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def request_bytes(
    method: str, path: str, host: str, body: bytes | None = None, extra: str = ""
) -> bytes:
    """One keep-alive HTTP/1.1 request; `extra` is added header lines, each ending in CRLF."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def json_request(method: str, path: str, host: str, payload: object, extra: str = "") -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return request_bytes(method, path, host, body, extra)


async def read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """Read one response; also tell whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_end = head.index(b"\r\n")
    status_line = head[:status_end]
    try:
        status = int(status_line[9:12])
    except ValueError:
        raise ProtocolError(f"bad status line {status_line!r}") from None
    length = 0
    closing = False
    for line in head[status_end + 2 : -4].split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ProtocolError("chunked responses are not supported by this client")
        elif name == b"connection" and value.strip().lower() == b"close":
            closing = True
    body = await reader.readexactly(length) if length else b""
    return Response(status, body), closing


async def fetch(host: str, port: int, request: bytes, timeout: float = 5.0) -> Response:
    """One request on a fresh connection (setup and readiness checks, not load)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(request)
        response, _ = await asyncio.wait_for(read_response(reader), timeout)
        return response
    finally:
        writer.close()


async def _client(
    index: int,
    host: str,
    port: int,
    make_request: RequestFactory,
    measure_from: float,
    stop_at: float,
    result: LoadResult,
) -> None:
    clock = time.perf_counter
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    seq = 0
    latencies = result.latencies
    while True:
        request = make_request(index, seq)
        seq += 1
        started = clock()
        if started >= stop_at:
            break
        measured = started >= measure_from
        try:
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            writer.write(request)
            response, closing = await read_response(reader)
        except (OSError, EOFError, asyncio.LimitOverrunError, ProtocolError) as error:
            if connection is not None:
                connection[1].close()
            connection = None
            if measured:
                result.errors[type(error).__name__] += 1
            else:
                result.warmup_errors += 1
            if len(result.sample_errors) < 5:
                result.sample_errors.append(repr(error))
            await asyncio.sleep(0.01)
            continue
        finished = clock()
        if closing:
            writer.close()
            connection = None
        if not measured:
            if 200 <= response.status < 300:
                result.warmup_ok += 1
            else:
                result.warmup_errors += 1
            continue
        if finished > stop_at:
            break  # straddles the end of the window: neither counted nor timed
        if 200 <= response.status < 300:
            result.ok += 1
            latencies.append(finished - started)
            result.per_second[int(finished - measure_from)] += 1
        else:
            result.errors[str(response.status)] += 1
            if len(result.sample_errors) < 5:
                result.sample_errors.append(f"{response.status} {response.body[:300]!r}")
    if connection is not None:
        connection[1].close()


async def run_load_async(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    on_window: Callable[[str], None] | None = None,
) -> LoadResult:
    """`clients` keep-alive connections, each sending its next request as soon as the last
    answer arrives; warm up for `warmup` s, then measure for `seconds` s. `on_window` is called
    with "start" and "end" at the edges of the measured window (e.g. to sample CPU counters)."""
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    result = LoadResult(clients=clients, seconds=seconds)
    result.per_second = [0] * (math.ceil(seconds) + 1)

    async def edges() -> None:
        if on_window is None:
            return
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        on_window("start")
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        on_window("end")

    await asyncio.gather(
        edges(),
        *(
            _client(i, host, port, make_request, measure_from, stop_at, result)
            for i in range(clients)
        ),
    )
    return result


def run(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop if available, else on the default loop."""
    if HAVE_UVLOOP:
        return uvloop.run(coro_factory())
    return asyncio.run(coro_factory())


def run_load(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    on_window: Callable[[str], None] | None = None,
) -> LoadResult:
    return run(
        lambda: run_load_async(
            host,
            port,
            make_request,
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            on_window=on_window,
        )
    )


# --------------------------------------------------------------------------------------------
# open loop: arrivals at a fixed rate, whether or not earlier requests have been answered


@dataclass
class OpenLoopResult:
    rate: float  # offered arrivals per second
    seconds: float
    sent: int = 0
    ok_latencies: list[float] = field(default_factory=list)  # seconds, 2xx, from arrival
    refused_latencies: list[float] = field(default_factory=list)  # seconds, 503, from arrival
    errors: Counter[str] = field(default_factory=Counter)  # any other outcome
    connections: int = 0  # connections opened: the most requests outstanding at once
    send_lags: list[float] = field(default_factory=list)  # seconds from arrival to written
    new_connection_lags: list[float] = field(default_factory=list)  # the same, when connecting

    @property
    def goodput(self) -> float:
        return len(self.ok_latencies) / self.seconds


async def _open_loop_request(
    host: str,
    port: int,
    request: bytes,
    arrival: float,
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    result: OpenLoopResult,
) -> None:
    """One arrival: on an idle keep-alive connection, or a new one if none is idle. A kept
    connection the server has closed meanwhile (its keep-alive timeout) is dropped, and the
    request sent again on a new one."""
    reused = bool(idle)
    try:
        if reused:
            reader, writer = idle.pop()
        else:
            reader, writer = await _open(host, port, result)
        writer.write(request)
        lag = time.perf_counter() - arrival  # the client's own lag, or its connection's
        (result.send_lags if reused else result.new_connection_lags).append(lag)
        try:
            response, closing = await read_response(reader)
        except (ConnectionResetError, EOFError):
            if not reused:
                raise
            writer.close()
            reader, writer = await _open(host, port, result)
            writer.write(request)
            response, closing = await read_response(reader)
    except (OSError, EOFError, asyncio.LimitOverrunError, ProtocolError) as error:
        result.errors[type(error).__name__] += 1
        return
    latency = time.perf_counter() - arrival  # from when it was due, not when it was sent
    if closing:
        writer.close()
    else:
        idle.append((reader, writer))
    if 200 <= response.status < 300:
        result.ok_latencies.append(latency)
    elif response.status == 503:
        result.refused_latencies.append(latency)
    else:
        result.errors[str(response.status)] += 1


async def _open(
    host: str, port: int, result: OpenLoopResult
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    connection = await asyncio.open_connection(host, port)
    result.connections += 1
    return connection


async def run_open_loop_async(
    host: str, port: int, make_request: RequestFactory, *, rate: float, seconds: float
) -> OpenLoopResult:
    """Send `rate` requests per second for `seconds`, evenly spaced, each at its time whatever
    the answers so far (an open loop: the clients of a public service do not wait for each
    other); then wait for every answer. Request n is `make_request(n, n)`."""
    result = OpenLoopResult(rate=rate, seconds=seconds)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = make_request(n, n)
        task = asyncio.create_task(_open_loop_request(host, port, request, due, idle, result))
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
    if pending:
        await asyncio.wait(pending)
    for _, writer in idle:
        writer.close()
    return result


def run_open_loop(
    host: str, port: int, make_request: RequestFactory, *, rate: float, seconds: float
) -> OpenLoopResult:
    return run(lambda: run_open_loop_async(host, port, make_request, rate=rate, seconds=seconds))
