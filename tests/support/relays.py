"""The relay in a test's process, and checks of what it published: the stream against the
store it relays (tests/integration/relay/, tests/integration/test_relay_retries.py)."""

import asyncio
import threading
import time

from prometheus_client import CollectorRegistry

from contexts.settings import Settings
from domain.service import CommandContext
from domain.users.service import UsersService
from eventlog.envelope import EventEnvelope
from eventlog.jetstream import connect, context_stream, ensure_stream
from eventlog.relay import Relay, RelayConfig
from eventlog.relay_main import open_event_store
from eventlog.relay_metrics import RelayMetrics
from eventlog.stores import Services
from tests.support.api import unique_email
from tests.support.nats import StoredMessage, last_position

CTX = CommandContext(correlation_id="corr-relay-test", causation_id="cause-relay-test")


def store_envelopes(services: Services, context: str) -> list[EventEnvelope]:
    recorder = getattr(services, context).recorder
    envelopes: list[EventEnvelope] = recorder.select_envelopes(context, 0, 10**9)
    return envelopes


def store_max(services: Services, context: str) -> int:
    return int(getattr(services, context).recorder.max_notification_id() or 0)


def stream_name(settings: Settings, context: str) -> str:
    return context_stream(context, settings).name


def wait_until_relayed(
    settings: Settings, context: str, position: int, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    name = stream_name(settings, context)
    while (seen := last_position(settings.nats_url, name)) < position:
        assert time.monotonic() < deadline, f"stream at {seen} after {timeout} s, not {position}"
        time.sleep(0.1)


def assert_exactly_the_store(messages: list[StoredMessage], services: Services, ctx: str) -> None:
    """The stream holds each of the store's positions once, in order, and nothing else."""
    positions = [message.position for message in messages]
    expected = [envelope.position for envelope in store_envelopes(services, ctx)]
    assert len(positions) == len(set(positions)), "a position was published twice"
    assert positions == expected


def register_users(services: Services, count: int) -> None:
    for _ in range(count):
        services.application(UsersService).register(CTX, "Someone", unique_email())


class RelayThread:
    """A relay of the test's process, on an event loop of its own thread."""

    def __init__(self, settings: Settings, context: str, config: RelayConfig | None = None):
        self.settings, self.context = settings, context
        self.config = config or RelayConfig(page_size=100, max_in_flight=32)
        self.registry = CollectorRegistry()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RelayThread":
        self._thread.start()
        assert self._started.wait(10), "the relay did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the relay did not stop"
        if self._error is not None:
            raise self._error

    def sample(self, name: str) -> float:
        value = self.registry.get_sample_value(name, {"context": self.context})
        return 0.0 if value is None else value

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            self._error = error
            self._started.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        factory, recorder = open_event_store(self.settings, self.context)
        nc = await connect(self.settings, name="test-relay")
        try:
            await ensure_stream(nc.jetstream(), self.context, self.settings)
            relay = Relay(
                context=self.context,
                recorder=recorder,
                database_url=str(self.settings.database_url(self.context)),
                nc=nc,
                stream=context_stream(self.context, self.settings),
                metrics=RelayMetrics(self.registry, self.context),
                config=self.config,
            )
            self._started.set()
            await relay.run(self._stop)
        finally:
            await nc.close()
            factory.close()
