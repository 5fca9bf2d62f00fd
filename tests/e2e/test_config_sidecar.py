"""The config sidecar beside a running service: real processes, real NATS and PostgreSQL.

- A breaker threshold set with `strata-config` reaches every worker of a running payments write
  service (its /metrics), without a restart; a bad value is refused by the sidecar (its
  /metrics) and the service keeps the last good one.
- After its NATS server restarts, the sidecar hands on an update within two seconds (nats-py
  alone delivers the first one many seconds late: the sidecar recreates its watcher).
- Started while NATS is down, it waits for it, alive and not ready, and is ready once NATS is.
- After its bucket is deleted it is not ready, and once `strata-config set` creates the bucket
  again it hands on the new bucket's values, whose revisions start at 1 again, keeping the last
  good values of the other settings.
"""

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import (
    bucket_environment,
    delete_bucket,
    live_document,
    put_raw,
    running_sidecar,
    strata_config,
)
from tests.support.nats import require_nats
from tests.support.postgres import require_postgres, scratch_databases, url_variables
from tests.support.processes import entry_point, free_port, running_service
from tests.support.servers import NatsServer, require_server_binaries, wait_until
from tests.support.waiting import assert_waiting, started, status_of, stop_promptly

SERVICE = "write-payments"
THRESHOLD = re.compile(r'^strata_breaker_failure_threshold\{downstream="payment-provider"\} (\S+)$')
RESYNC_BOUND_SECONDS = 2.0
READY_SECONDS = 90  # two workers importing every context on a busy machine


def _threshold(base: str) -> float | None:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if found := THRESHOLD.match(line):
            return float(found.group(1))
    return None


def _rejected(base: str, setting: str) -> float:
    pattern = re.compile(
        rf'^strata_config_updates_total\{{outcome="rejected",service="{SERVICE}",'
        rf'setting="{setting}"\}} (\S+)$'
    )
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if found := pattern.match(line):
            return float(found.group(1))
    return 0.0


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    environment = bucket_environment(require_nats())
    yield environment
    delete_bucket(environment)


@pytest.mark.postgres
def test_a_threshold_set_reaches_every_worker_and_a_bad_one_is_kept_out(
    env: dict[str, str], tmp_path: Path
) -> None:
    live_file = tmp_path / "live" / f"{SERVICE}.json"
    with scratch_databases(require_postgres(), "payments") as urls:
        service_env = {
            **env,
            **url_variables(urls),
            "STRATA_WEB_WORKERS": "2",
            "STRATA_LIVE_SETTINGS_FILE": str(live_file),
        }
        with (
            running_sidecar(SERVICE, env, live_file) as (sidecar, _),
            running_service(
                entry_point("strata-write-api"),
                service_env,
                "STRATA_PORT",
                args=("--context", "payments"),
                ready_seconds=READY_SECONDS,
            ) as (service, process),
        ):
            assert _threshold(service) == 5  # the default, from the settings at start
            done = strata_config(env, "set", SERVICE, "breaker_failure_threshold", "2")
            assert done.returncode == 0, done.stderr
            wait_until(lambda: _threshold(service) == 2, 5, "the service takes threshold 2")

            put_raw(env, f"{SERVICE}.breaker_failure_threshold", b"0")  # below the bound
            put_raw(env, f"{SERVICE}.port", b"9999")  # read at start only
            wait_until(lambda: _rejected(sidecar, "port") == 1, 5, "the sidecar refuses port")
            assert _rejected(sidecar, "breaker_failure_threshold") == 1
            assert live_document(live_file)["settings"] == {"breaker_failure_threshold": 2}
            assert _threshold(service) == 2
    log = process.stdout.read() if process.stdout else ""
    applied = re.findall(r'"message": "live settings applied[^\n]*"pid": (\d+)', log)
    assert len(set(applied)) == 2, "each of the two workers applies the change"


def test_after_a_nats_restart_an_update_arrives_within_the_bound(tmp_path: Path) -> None:
    require_server_binaries()
    server = NatsServer(tmp_path / "nats")
    server.folder.mkdir()
    server.start()
    try:
        env = bucket_environment(server.url)
        live_file = tmp_path / "live" / f"{SERVICE}.json"
        with running_sidecar(SERVICE, env, live_file):
            put_raw(env, f"{SERVICE}.log_level", b'"debug"')
            wait_until(lambda: _handed_on(live_file, "debug"), 5, "the first value is handed on")
            server.crash()
            server.start()
            started = time.monotonic()
            put_raw(env, f"{SERVICE}.log_level", b'"warning"')
            wait_until(lambda: _handed_on(live_file, "warning"), 30, "the update after restart")
            elapsed = time.monotonic() - started
        assert elapsed < RESYNC_BOUND_SECONDS, f"handed on {elapsed:.2f} s after the restart"
    finally:
        server.close()


def test_a_bucket_deleted_and_created_again_is_followed(
    env: dict[str, str], tmp_path: Path
) -> None:
    live_file, log = tmp_path / "live" / f"{SERVICE}.json", tmp_path / "sidecar.log"
    with running_sidecar(SERVICE, env, live_file, log) as (sidecar, process):
        for setting, value in (("breaker_failure_threshold", "2"), ("log_level", "debug")):
            assert strata_config(env, "set", SERVICE, setting, value).returncode == 0
        wait_until(lambda: _handed_on(live_file, "debug"), 5, "the first values are handed on")
        delete_bucket(env)
        gone = "the config bucket is gone"
        wait_until(lambda: gone in httpx.get(f"{sidecar}/readyz").text, 5, "not ready: gone")
        kept = {"breaker_failure_threshold": 2, "log_level": "debug"}
        assert live_document(live_file)["settings"] == kept
        done = strata_config(env, "set", SERVICE, "log_level", "warning")  # at revision 1
        assert done.returncode == 0, done.stderr
        wait_until(lambda: _handed_on(live_file, "warning"), 5, "the new bucket's value")
        document = live_document(live_file)
        assert document["settings"] == {"breaker_failure_threshold": 2, "log_level": "warning"}
        wait_until(lambda: status_of(f"{sidecar}/readyz") == 200, 5, "the sidecar is ready")
        assert process.poll() is None
    text = log.read_text(errors="replace")
    assert text.count('"level": "warning"') == 1, text  # the bucket is gone
    assert "Traceback" not in text, text


def _handed_on(live_file: Path, level: str) -> bool:
    handed_on: object = live_document(live_file).get("settings", {}).get("log_level")
    return handed_on == level


def test_a_sidecar_started_while_nats_is_down_waits_for_it(tmp_path: Path) -> None:
    require_server_binaries("nats-server")
    server = NatsServer(tmp_path / "nats")  # its port is free until it starts
    server.folder.mkdir()
    env = {
        **bucket_environment(server.url),
        "STRATA_LIVE_SETTINGS_FILE": str(tmp_path / "live" / f"{SERVICE}.json"),
        "STRATA_CONFIG_SIDECAR_PORT": str(port := free_port()),
    }
    argv = [sys.executable, "-m", "sidecar.main", "--service", SERVICE]
    base, log = f"http://127.0.0.1:{port}", tmp_path / "sidecar.log"
    try:
        with started(argv, env, log) as process:
            assert_waiting(base, process, "NATS is not reachable yet")
            server.start()
            wait_until(lambda: status_of(f"{base}/readyz") == 200, 30, "the sidecar is ready")
            assert stop_promptly(process) == 0
    finally:
        server.close()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "NATS error" not in text, text
