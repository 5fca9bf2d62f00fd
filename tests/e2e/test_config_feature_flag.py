"""A feature flag and a breaker threshold changed through the config sidecar reach a running
web BFF: real `strata-bff-web`, `strata-config-sidecar` and `strata-read-api` processes, real
NATS. `strata config set bff-web feature_flags ...` switches the dashboard's leaderboard off
without a restart; `strata config unset` brings it back."""

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.web.dashboard import LEADERBOARD_FLAG
from tests.support.bff import ReadApiProcess, bearer, read_database
from tests.support.config import bucket_environment, delete_bucket, running_sidecar
from tests.support.nats import require_nats
from tests.support.processes import entry_point, free_port, running_service
from tests.support.servers import wait_until

SERVICE = "bff-web"
ADA = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
BOB = uuid.UUID("00000000-0000-4000-8000-0000000000b0")
STRATA = entry_point("strata")


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    environment = bucket_environment(require_nats())
    yield environment
    delete_bucket(environment)


@pytest.fixture
def read_api(tmp_path: Path) -> Iterator[str]:
    """A read API over Ada's profile and stats, second of the EUR spenders."""
    with read_database(tmp_path) as (data_dir, write):
        write.profile(ADA, "Ada", "ada@example.com", city="London", country="GB")
        write.stats(ADA, 2, {"EUR": 4200})
        write.top("EUR", BOB, 9900)
        write.top("EUR", ADA, 4200)
        write.checkpoint_all(1)
        process = ReadApiProcess(data_dir, free_port())
        with process.running():
            yield process.url


def strata_config(env: dict[str, str], *arguments: str) -> None:
    """`strata config ...`, the `strata` entry point's configuration command."""
    assert STRATA, "strata is not installed"
    done = subprocess.run(
        [STRATA, "config", *arguments, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def leaderboard(bff: str) -> dict[str, Any]:
    response = httpx.get(f"{bff}/web/dashboard", headers=bearer(ADA), timeout=10)
    assert response.status_code == 200, response.text
    section: dict[str, Any] = response.json()["leaderboard"]
    return section


def metric(bff: str, name: str, label: str) -> float | None:
    pattern = re.compile(rf"^{name}\{{{label}\}} (\S+)$")
    for line in httpx.get(f"{bff}/metrics").text.splitlines():
        if found := pattern.match(line):
            return float(found.group(1))
    return None


def test_a_flag_set_through_the_sidecar_switches_a_dashboard_section_off_and_on(
    env: dict[str, str], read_api: str, tmp_path: Path
) -> None:
    live_file = tmp_path / "live" / f"{SERVICE}.json"
    bff_env = {
        **env,
        "STRATA_READ_API_URL": read_api,
        "STRATA_LIVE_SETTINGS_FILE": str(live_file),
        "STRATA_RATE_LIMIT_DEFAULT": "10000/minute",
    }
    with (
        running_sidecar(SERVICE, env, live_file),
        running_service(
            entry_point("strata-bff-web"), bff_env, "STRATA_BFF_WEB_PORT", ready_seconds=90
        ) as (bff, process),
    ):
        standings = leaderboard(bff)["standings"]
        assert [(s["currency"], s["rank"]) for s in standings] == [("EUR", 2)]

        strata_config(env, "set", SERVICE, "feature_flags", json.dumps({LEADERBOARD_FLAG: False}))
        wait_until(
            lambda: leaderboard(bff).get("reason") == "switched-off", 5, "the leaderboard is off"
        )
        assert metric(bff, "strata_feature_flag", f'flag="{LEADERBOARD_FLAG}"') == 0

        strata_config(env, "set", SERVICE, "breaker_failure_threshold", "1")
        threshold = 'downstream="read-api:stats"'
        wait_until(
            lambda: metric(bff, "strata_breaker_failure_threshold", threshold) == 1,
            5,
            "the breakers made take threshold 1",
        )

        strata_config(env, "unset", SERVICE, "feature_flags")
        wait_until(lambda: "standings" in leaderboard(bff), 5, "the leaderboard is back")
        assert process.poll() is None  # the same process all along: no restart
