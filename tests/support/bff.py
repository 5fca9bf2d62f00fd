"""The BFFs under test: a real `strata-read-api` process behind them (embedded read database,
written by hand), tokens as the identity service issues them, and the BFF apps in process."""

import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bff.settings import BffSettings
from readmodels.sql import SQLiteDatabase
from tests.support.auth import IDENTITY
from tests.support.processes import entry_point, running_service
from tests.support.read_models import ReadModelWriter


def token(subject: str | uuid.UUID, roles: Sequence[str] = ("user",)) -> str:
    """An access token of the session's test identity, which every service trusts."""
    return IDENTITY.token(str(subject), roles, seconds=3600)


def bearer(subject: str | uuid.UUID, roles: Sequence[str] = ("user",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(subject, roles)}"}


@dataclass
class ReadApiProcess:
    """A `strata-read-api` process over `data_dir`, on one port across its restarts."""

    data_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[subprocess.Popen[str]]:
        env = {"STRATA_DATA_DIR": str(self.data_dir), "STRATA_LOG_LEVEL": "warning", **self.env}
        script = entry_point("strata-read-api")
        variable = "STRATA_READ_API_PORT"
        # A busy machine takes long to start a Python process: give it time.
        with running_service(script, env, variable, port=self.port, ready_seconds=90) as (_, proc):
            yield proc


@contextmanager
def read_database(folder: Path) -> Iterator[tuple[Path, ReadModelWriter]]:
    """An embedded read database (its data folder) and its writer."""
    data_dir = folder / "var"
    writer = ReadModelWriter(SQLiteDatabase(data_dir / "read.sqlite"))
    try:
        yield data_dir, writer
    finally:
        writer.close()


def bff_settings(read_api_url: str, **overrides: Any) -> BffSettings:
    """Breakers that open after 2 failures and probe again after 0.5 s, memory rate limits
    (unless `redis_url` is given) that no test reaches by accident."""
    defaults: dict[str, Any] = {
        "read_api_url": read_api_url,
        "breaker_failure_threshold": 2,
        "breaker_recovery_seconds": 0.5,
        "rate_limit_default": "10000/minute",
        "bff_timeout_seconds": 5,
    }
    return BffSettings(**(defaults | overrides))


def breaker_state(metrics_text: str, downstream: str) -> float:
    """The `strata_breaker_state` of `downstream` in a /metrics answer."""
    prefix = f'strata_breaker_state{{downstream="{downstream}"}} '
    lines = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    assert lines, f"no breaker {downstream} in the metrics"
    return float(lines[0].removeprefix(prefix))


def write_fulfilment(
    writer: ReadModelWriter, order_id: uuid.UUID, user_id: uuid.UUID, status: str, step: str
) -> None:
    """A row of the `fulfilments` read model, as the fulfilment's projection writes it."""
    now = datetime.now(UTC)
    with writer.sql.transaction() as tx:
        tx.execute(
            "INSERT INTO fulfilments (order_id, saga_id, user_id, status, step, attention,"
            " reason, note, steps, started_at, updated_at, version)"
            " VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, '[]', ?, ?, 1)",
            [order_id, uuid.uuid4(), user_id, status, step, now, now],
        )
