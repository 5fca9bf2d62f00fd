"""One measured run of the stack: watchers, the open-loop driver, CPU windows, the drain."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench_host import log
from fanout_capacity import measure_capacity
from fanout_cpu import BusySampler, Spy, cpu_by_service, start_burner
from fanout_journeys import Command, Driver
from fanout_stack import Service, StackConfig, backend_pids, clock, read_models, stop_service
from fanout_watch import Observations, watch_postgres, watch_redis, watch_subjects
from proc_cpu import Window

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient


@dataclass(frozen=True)
class Plan:
    """What one run does on the stack."""

    rate: float | None
    """Commands/s of the lag run; None: half the capacity measured first."""
    seconds: float
    warmup: float
    profile: bool = False
    capacity_clients: int = 0
    """Closed-loop connections of the capacity phase; 0: no capacity phase."""
    capacity_seconds: float = 10.0
    burner: bool = False
    """A busy loop on one core from the lag run's warm-up to the end of its drain."""


@dataclass
class StackRun:
    commands: list[Command]
    obs: Observations
    measure_from: float
    measure_to: float
    cpu: dict[str, Any] | None
    driver: dict[str, Any]
    profiles: dict[str, Any]
    drained: bool
    busy: dict[int, tuple[float, float]]
    rate: float
    capacity: dict[str, Any] | None = None
    burner: bool = False


class Watchers:
    """The observers of the read models' checkpoints and of the relays' messages."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.keys = read_models()
        self.obs = Observations()
        self.tasks: list[asyncio.Task[None]] = []
        self.nc: NatsClient | None = None

    async def start(self) -> None:
        config, keys, obs = self.config, self.keys, self.obs
        self.tasks = [
            asyncio.create_task(
                watch_redis(config.redis_url, [k for k in keys if k.store == "redis"], obs)
            ),
            asyncio.create_task(
                watch_postgres(config.url("read"), [k for k in keys if k.store == "postgres"], obs)
            ),
        ]
        self.nc = await watch_subjects(config.nats_url, config.namespace, obs)
        await asyncio.sleep(0.5)  # subscriptions in place
        for task in self.tasks:
            if task.done():
                task.result()  # raises what went wrong

    async def drain(self, commands: list[Command], timeout: float = 30.0) -> bool:
        """Wait until every read model has caught up with the last answered command."""
        last = Counter[str]()
        for command in commands:
            if command.position:
                last[command.context] = max(last[command.context], command.position)
        deadline = clock() + timeout
        while clock() < deadline:
            if all(self.obs.last(k) >= last[k.context] for k in self.keys):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


async def drive(config: StackConfig, services: dict[str, Service], plan: Plan) -> StackRun:
    watchers = Watchers(config)
    await watchers.start()
    port = services["write-api"].port
    capacity = None
    if plan.capacity_clients:
        log(
            f"    capacity: {plan.capacity_clients} closed-loop connections for "
            f"{plan.capacity_seconds:g} s ..."
        )
        capacity = await measure_capacity(
            port,
            watchers.obs,
            watchers.keys,
            config.url("read"),
            clients=plan.capacity_clients,
            seconds=plan.capacity_seconds,
        )
        log(
            f"    capacity {capacity['capacity']} commands/s sustained (written"
            f" {capacity['write_rate']}/s, visible {capacity['visible_rate']}/s, sagas ended"
            f" {capacity['sagas_ended_s']} s after the last answer)"
        )
    rate = plan.rate if plan.rate is not None else capacity_rate(capacity)
    log(f"    driving {rate:g} commands/s for {plan.warmup:g} + {plan.seconds:g} s ...")
    driver = Driver(port, rate, uuid.uuid4().hex[:8])
    sampler = BusySampler(list(services.values()))
    sampler.start()
    burner = start_burner(config.log_dir) if plan.burner else None
    window = Window()
    spies: dict[str, Spy] = {}
    backends: set[int] = set()
    measure_from = clock() + plan.warmup
    measure_to = measure_from + plan.seconds

    async def edges() -> None:
        await asyncio.sleep(max(0.0, measure_from - clock()))
        window("start")
        if plan.profile:
            for name in ("write-api", "projector", "relay-users", "relay-orders"):
                spies[name] = Spy(services[name], config.log_dir, plan.seconds)
        await asyncio.sleep(max(0.0, measure_to - clock()))
        window("end")
        backends.update(await asyncio.to_thread(backend_pids, config))

    try:
        await asyncio.gather(driver.run(plan.warmup + plan.seconds), edges())
        drained = await watchers.drain(driver.commands)
    finally:
        if burner is not None:
            await asyncio.to_thread(window.snapshot, "end")  # taken while the burner runs
            stop_service(burner, timeout=5)
    await watchers.stop()
    sampler.stop()
    profiles = {name: spy.finish() for name, spy in spies.items()}
    measured = [*services.values(), *([burner] if burner else [])]
    return StackRun(
        driver.commands,
        watchers.obs,
        measure_from,
        measure_to,
        cpu_by_service(window, measured, backends - watchers.obs.backends),
        {
            "journeys": driver.journeys,
            "connections": driver.connections,
            "max_in_flight": driver.max_in_flight,
        },
        profiles,
        drained,
        sampler.per_bucket(measure_from, 10.0),
        rate,
        capacity,
        burner is not None,
    )


def capacity_rate(capacity: dict[str, Any] | None) -> float:
    """Half the measured capacity: the rate the issue's lag target is set at."""
    if capacity is None or not capacity["capacity"]:
        raise RuntimeError(f"no capacity measured to take half of: {capacity}")
    return round(float(capacity["capacity"]) / 2, 1)
