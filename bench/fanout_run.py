"""One measured run of the stack: watchers, the open-loop driver, CPU windows, the drain."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import write_throughput as wt
from fanout_cpu import BusySampler, Spy, cpu_by_service
from fanout_journeys import Command, Driver
from fanout_stack import Service, StackConfig, clock, read_models
from fanout_watch import Observations, watch_postgres, watch_redis, watch_subjects


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


async def drive(
    config: StackConfig,
    services: dict[str, Service],
    *,
    rate: float,
    seconds: float,
    warmup: float,
    profile: bool,
) -> StackRun:
    keys = read_models()
    obs = Observations()
    watchers = [
        asyncio.create_task(
            watch_redis(config.redis_url, [k for k in keys if k.store == "redis"], obs)
        ),
        asyncio.create_task(
            watch_postgres(config.url("read"), [k for k in keys if k.store == "postgres"], obs)
        ),
    ]
    subject_nc = await watch_subjects(config.nats_url, config.namespace, obs)
    await asyncio.sleep(0.5)  # subscriptions in place
    for task in watchers:
        if task.done():
            task.result()  # raises what went wrong
    driver = Driver(services["write-api"].port, rate, uuid.uuid4().hex[:8])
    sampler = BusySampler(list(services.values()))
    sampler.start()
    window = wt.Window()
    spies: dict[str, Spy] = {}
    measure_from = clock() + warmup
    measure_to = measure_from + seconds

    async def edges() -> None:
        await asyncio.sleep(max(0.0, measure_from - clock()))
        window("start")
        if profile:
            for name in ("projector", "relay-users", "relay-orders"):
                spies[name] = Spy(services[name], config.log_dir, seconds)
        await asyncio.sleep(max(0.0, measure_to - clock()))
        window("end")

    await asyncio.gather(driver.run(warmup + seconds), edges())

    # drain: wait until every read model has caught up with the last answered command
    last = Counter[str]()
    for command in driver.commands:
        if command.position:
            last[command.context] = max(last[command.context], command.position)
    deadline = clock() + 30
    drained = False
    while clock() < deadline:
        if all(obs.last(k) >= last[k.context] for k in keys):
            drained = True
            break
        await asyncio.sleep(0.05)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    with contextlib.suppress(Exception):
        await subject_nc.close()
    sampler.stop()
    profiles = {name: spy.finish() for name, spy in spies.items()}
    cpu = cpu_by_service(window, list(services.values()))
    return StackRun(
        driver.commands,
        obs,
        measure_from,
        measure_to,
        cpu,
        {
            "journeys": driver.journeys,
            "connections": driver.connections,
            "max_in_flight": driver.max_in_flight,
        },
        profiles,
        drained,
        sampler.per_bucket(measure_from, 10.0),
    )
