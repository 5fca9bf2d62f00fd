"""The relay as operators run it: `python -m eventlog.relay_main` in a process of its own, with
a test's settings, its /metrics and /readyz read over HTTP (tests/integration/relay/)."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from contexts.settings import Settings
from tests.support.postgres import url_settings
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    """`python -m eventlog.relay_main --context <context>` with the test's settings."""

    def __init__(self, settings: Settings, context: str, log_path: Path, **overrides: Any):
        self.port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
        values = {
            **url_settings({c: u for c, u in settings.database_urls().items() if u}),
            "nats_url": settings.nats_url,
            "stream_namespace": settings.stream_namespace,
            "stream_duplicate_window_seconds": settings.stream_duplicate_window_seconds,
            "relay_port": self.port,
            "log_level": "info",
            **overrides,
        }
        env.update({f"STRATA_{key.upper()}": str(value) for key, value in values.items()})
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventlog.relay_main", "--context", context],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )

    def metric(self, name: str) -> float | None:
        """A sample of /metrics, or None while the endpoint does not answer."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=1) as response:
                text = response.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return None

    @property
    def active(self) -> bool:
        return self.metric("strata_relay_active") == 1

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
