"""`strata-projector` as operators run it: a real process, configured by environment."""

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from eventlog.jetstream import ContextStream
from eventlog.relay_publish import relay_headers
from eventlog.stores import build_services
from projections.models import all_projections
from tests.support.dumps import dump_read_models
from tests.support.processes import (
    entry_point,
    free_port,
    holds_within,
    readiness,
    start_projector,
    without_strata_variables,
)
from tests.support.projections import Scenario, project, read_side, run_scenario
from tests.support.settings import settings_of
from tests.support.stack_env import scratch_stack_environment, stack_read_targets

ENTRY_POINT = entry_point("strata-projector")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT, "the strata-projector console script is not installed"
    return subprocess.run(
        [ENTRY_POINT],
        env={**without_strata_variables(), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_embedded_mode_is_refused_in_one_line(tmp_path: Path) -> None:
    finished = _run({"STRATA_DATA_DIR": str(tmp_path)})

    assert finished.returncode == 1
    assert finished.stderr.strip().count("\n") == 0
    assert finished.stderr.startswith("strata-projector: the projector runs in the stack mode")
    assert "the write API runs the fan-out" in finished.stderr


def test_invalid_settings_name_the_variable() -> None:
    finished = _run({"STRATA_PROJECTOR_PORT": "0"})

    assert finished.returncode == 1
    assert finished.stderr.startswith("strata-projector: invalid settings: STRATA_PROJECTOR_PORT")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Scratch event stores and read database, a Redis database and a stream namespace."""
    with scratch_stack_environment(
        STRATA_PROJECTOR_PORT=str(free_port()),
        STRATA_PROJECTOR_BATCH_SIZE="16",
        STRATA_LOG_LEVEL="debug",
    ) as environment:
        yield environment


def _publish(stack: dict[str, str], scenario: Scenario) -> None:
    async def main() -> None:
        nc = await nats.connect(stack["STRATA_NATS_URL"])
        js = nc.jetstream()
        for context in ("users", "orders"):
            stream = ContextStream(context, stack["STRATA_STREAM_NAMESPACE"])
            for envelope in scenario.envelopes(context):
                headers = relay_headers(envelope, stream.name, None)
                await js.publish(stream.subject_of(envelope), envelope.to_json(), headers=headers)
        await nc.close()

    asyncio.run(main())


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        if metric.startswith(name + "{") and all(f'{k}="{v}"' in metric for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {name}{{{wanted}}} in the metrics")


def test_the_projector_applies_published_events_reports_them_and_stops_on_sigterm(
    stack: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_of(stack)
    services = build_services(settings.model_copy(update={"group_commit": False}))
    try:
        scenario = run_scenario(services)
        assert ENTRY_POINT
        process = subprocess.Popen(
            [ENTRY_POINT],
            env={**without_strata_variables(), **stack},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{stack['STRATA_PROJECTOR_PORT']}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    pytest.fail(f"not ready: {process.communicate()[1][-3000:]}")
                time.sleep(0.2)
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}

            _publish(stack, scenario)
            # Every projection, not one: SIGTERM finishes the batches in hand, not the stream.
            wanted = {
                (projection.name, context): len(scenario.envelopes(context))
                for projection in all_projections()
                for context in projection.contexts
                if context in ("users", "orders")  # the scenario's; no events in the others
            }
            deadline = time.monotonic() + 30
            while True:
                text = httpx.get(f"{base}/metrics").text
                try:
                    done = all(
                        _metric(
                            text,
                            "strata_projection_events_applied_total",
                            projection=name,
                            context=context,
                        )
                        == total
                        for (name, context), total in wanted.items()
                    )
                except AssertionError:
                    done = False
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert done, text
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr[-3000:]
        with read_side("sqlite", tmp_path, name="expected") as expected:
            project(expected, scenario)
            expected_dump = dump_read_models(expected.targets)
    finally:
        services.close()

    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    applied = [line for line in lines if line["message"].startswith("applied")]
    assert applied and all(line.get("correlation_id") == "scenario" for line in applied)
    assert any("finishing the batches in hand" in line["message"] for line in lines)
    assert not [line for line in lines if line["level"] in ("warning", "error", "critical")]

    with stack_read_targets(stack) as targets:
        live = dump_read_models(targets)
    assert live == expected_dump


def test_a_second_projector_stands_by_and_takes_over_when_the_first_dies(
    stack: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_of(stack)
    services = build_services(settings.model_copy(update={"group_commit": False}))
    first_port, second_port = free_port(), free_port()
    first = start_projector(stack, first_port)
    second = None
    try:
        assert holds_within(lambda: readiness(first_port)[0] == 200, 30)
        second = start_projector(stack, second_port)
        assert holds_within(lambda: "standby" in readiness(second_port)[1], 30)
        assert readiness(second_port)[0] == 503

        first.kill()  # kill -9: its session ends, and with it the lock
        first.wait(timeout=10)
        assert holds_within(lambda: readiness(second_port)[0] == 200, 15)

        scenario = run_scenario(services)
        _publish(stack, scenario)
        with read_side("sqlite", tmp_path, name="expected") as expected:
            project(expected, scenario)
            expected_dump = dump_read_models(expected.targets)
        with stack_read_targets(stack) as targets:
            assert holds_within(lambda: dump_read_models(targets) == expected_dump, 30)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=30)
        services.close()
