"""The configuration bucket and its processes for tests: `strata-config` and a running
`strata-config-sidecar`, each test in a NATS namespace of its own (so a bucket of its own)."""

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
from nats.js.errors import NotFoundError

from sidecar.bucket import BUCKET
from tests.support.nats import new_namespace
from tests.support.processes import cli_json, entry_point, run_cli, running_service

CLI = entry_point("strata-config")
SIDECAR = entry_point("strata-config-sidecar")


def bucket_environment(nats_url: str) -> dict[str, str]:
    return {"STRATA_NATS_URL": nats_url, "STRATA_STREAM_NAMESPACE": new_namespace()}


def _bucket(env: dict[str, str]) -> str:
    return f"{env['STRATA_STREAM_NAMESPACE']}_{BUCKET}"


def delete_bucket(env: dict[str, str]) -> None:
    async def delete() -> None:
        nc = await nats.connect(env["STRATA_NATS_URL"], connect_timeout=2)
        try:
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_key_value(_bucket(env))
        finally:
            await nc.close()

    asyncio.run(delete())


def put_raw(env: dict[str, str], key: str, value: bytes) -> int:
    """Put a value as any client may, bypassing the CLI's checks; its revision."""

    async def put() -> int:
        nc = await nats.connect(env["STRATA_NATS_URL"], connect_timeout=2)
        try:
            kv = await nc.jetstream().key_value(_bucket(env))
            return await kv.put(key, value)
        finally:
            await nc.close()

    return asyncio.run(put())


def strata_config(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    assert CLI, "strata-config is not installed"
    return run_cli(CLI, {**os.environ, **env}, *arguments, timeout=60)


def strata_config_json(env: dict[str, str], *arguments: str) -> Any:
    assert CLI, "strata-config is not installed"
    return cli_json(CLI, {**os.environ, **env}, *arguments)


@contextlib.contextmanager
def running_sidecar(
    service: str, env: dict[str, str], live_file: Path, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The sidecar of `service`, ready: it has handed the bucket's values to `live_file`. Its
    output goes to its process's `stdout` pipe, or to `log`."""
    with running_service(
        SIDECAR,
        {**env, "STRATA_LIVE_SETTINGS_FILE": str(live_file)},
        "STRATA_CONFIG_SIDECAR_PORT",
        args=("--service", service),
        ready_seconds=60,
        log=log,
    ) as running:
        yield running


def live_document(path: Path) -> dict[str, Any]:
    """The live settings file's document ({} while there is none)."""
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return document
