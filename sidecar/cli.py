"""`strata-config get|set|unset|history` (also `strata config ...`): the live settings in the
configuration bucket.

    strata-config get write-payments                                 # every setting set
    strata-config get write-payments breaker_failure_threshold
    strata-config set write-payments breaker_failure_threshold 3
    strata-config set write-payments log_level debug                 # a bare word is a string
    strata-config set write-payments feature_flags '{"new-checkout": true}'
    strata-config unset write-payments log_level                     # back to its start value
    strata-config history write-payments breaker_failure_threshold

A value is JSON, or else taken as a string; JSON whose object names a member twice is refused.
`set` validates it against the service's settings model first and refuses a setting that is not
live (read at start only) or unknown. `unset` of a key that is not set writes nothing. `--json`
prints JSON for machines. Exit codes: 0 done; 1 NATS unreachable, or nothing set for that key
(`get`, `unset`); 2 bad arguments (an unknown service, a setting that is not live, an invalid
value).
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import nats.errors
import typer
from nats.aio.client import Client as NatsClient
from nats.js.errors import APIError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from contexts.cli import run
from eventlog.jetstream import nats_servers
from runtime.cli import CommandFailed
from runtime.http.json_bodies import DuplicateMember, loads_unique
from runtime.live_settings import NotLive, check_live, validate_live
from runtime.settings import CommonSettings, load_settings
from sidecar.bucket import (
    ConfigKey,
    decode,
    encode,
    open_bucket,
    service_keys,
    stop_watching,
)
from sidecar.services import UnknownService, service_settings, services

PROG = "strata-config"
CONNECT_SECONDS = 10
WRONG_LAST_REVISION = (10071, 10164)
"""JetStream's error codes of a write whose expected last revision of the key is not the last."""
T = TypeVar("T")

cli = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Read and change the live settings of the services (the NATS configuration bucket).",
)


class Failed(CommandFailed):
    """The command could not be done (exit code 1)."""


def _service(service: str) -> str:
    try:
        service_settings(service)
    except UnknownService as error:
        raise typer.BadParameter(str(error)) from None
    return service


Service = Annotated[
    str, typer.Argument(help="The service: " + ", ".join(services()), callback=_service)
]
Setting = Annotated[str, typer.Argument(help="A live setting of the service: log_level, ...")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _live(service: str, setting: str) -> ConfigKey:
    try:
        settings = service_settings(service)
        check_live(settings.model, setting, settings.live)
    except NotLive as error:
        raise typer.BadParameter(str(error), param_hint="SETTING") from None
    return ConfigKey(service, setting)


def _parsed(value: str) -> Any:
    """The value as JSON, else the text itself; raises `DuplicateMember`, and ValueError for
    JSON nested too deeply to read."""
    try:
        return loads_unique(value.encode())
    except DuplicateMember:
        raise
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError:
        return value


async def _connect(settings: CommonSettings) -> NatsClient:
    """One connection for one command, silent: a failure is the command's one-line error."""

    async def quiet(_error: Exception) -> None:
        return None

    nc = NatsClient()
    # Each server is tried twice at most, 1 s apart (nats-py: 60 tries, 2 s apart).
    connecting = nc.connect(
        servers=nats_servers(settings),
        name=PROG,
        connect_timeout=2,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=1,
        error_cb=quiet,
    )
    await asyncio.wait_for(connecting, CONNECT_SECONDS)
    return nc


def _on_bucket(work: Callable[[KeyValue], Awaitable[T]]) -> T:
    """Run `work` on the configuration bucket; raises `Failed` when NATS does not answer."""
    settings = load_settings(PROG, CommonSettings)

    async def connected() -> T:
        try:
            nc = await _connect(settings)
        except (TimeoutError, nats.errors.Error, OSError) as error:
            raise Failed(f"NATS at {settings.nats_url} is unreachable: {_said(error)}") from None
        try:
            return await work(await open_bucket(nc.jetstream(), settings))
        except (TimeoutError, nats.errors.Error) as error:
            raise Failed(f"the configuration bucket did not answer: {_said(error)}") from None
        finally:
            await nc.close()

    return asyncio.run(connected())


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _row(entry: KeyValue.Entry) -> dict[str, Any]:
    created: object = entry.created
    deleted = entry.operation is not None
    return {
        "key": entry.key,
        "revision": entry.revision,
        "time": created.isoformat() if isinstance(created, datetime) else None,
        "operation": "unset" if deleted else "set",
        "value": None if deleted else _shown(entry.value),
    }


def _shown(raw: bytes | None) -> Any:
    """A stored value, or its text when it is no value of the bucket (put there by another
    client; the sidecar refuses it)."""
    try:
        return decode(raw)
    except ValueError:
        return (raw or b"").decode(errors="replace")


async def _last_entries(kv: KeyValue, keys: str) -> list[KeyValue.Entry]:
    """The last value of each key matching `keys` (deleted ones left out)."""
    watcher = await kv.watch(keys, ignore_deletes=True)
    entries = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            entries.append(entry)
    finally:
        await stop_watching(watcher)
    return entries


def _print(rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(json.dumps(row[c]) if c == "value" else str(row[c]) for c in columns))
    Console().print(table)


@cli.command()
def get(
    service: Service,
    setting: Annotated[str | None, typer.Argument()] = None,
    as_json: AsJson = False,
) -> None:
    """The values set for a service: every live setting set, or one."""
    keys = str(_live(service, setting)) if setting else service_keys(service)
    rows = [_row(entry) for entry in _on_bucket(lambda kv: _last_entries(kv, keys))]
    if setting and not rows:
        raise Failed(f"{keys} is not set (the service keeps its start value)")
    _print(rows, as_json, ("key", "value", "revision", "time"))


@cli.command("set", context_settings={"ignore_unknown_options": True})
def set_(service: Service, setting: Setting, value: str, as_json: AsJson = False) -> None:
    """Set a live setting: the service takes it within a second, without a restart."""
    key = _live(service, setting)
    try:
        settings = service_settings(service)
        checked = validate_live(settings.model, {setting: _parsed(value)}, settings.live)
        valid = to_jsonable_python(checked[setting])  # as the service reads it: 2 is 2.0
    except DuplicateMember as error:
        where = ".".join(str(part) for part in (setting, *error.path))
        raise typer.BadParameter(f"{where}: {error}", param_hint="VALUE") from None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="VALUE") from None
    revision = _on_bucket(lambda kv: kv.put(str(key), encode(valid)))
    row = {"key": str(key), "value": valid, "revision": revision}
    _print([row], as_json, ("key", "value", "revision"))


async def _delete_set(kv: KeyValue, key: str) -> bool:
    """Delete the key if it has a value (a delete marker on its last revision); whether it had
    one. A key deleted already gets no other marker, nor another revision."""
    while True:
        try:
            last = await kv.get(key)
        except KeyNotFoundError:  # never set, or deleted
            return False
        try:
            await kv.delete(key, last=last.revision)
        except APIError as error:
            if error.err_code in WRONG_LAST_REVISION:
                continue  # set or deleted meanwhile: look again
            raise
        return True


@cli.command()
def unset(service: Service, setting: Setting, as_json: AsJson = False) -> None:
    """Remove a setting: the service returns to the value it started with."""
    key = _live(service, setting)
    if not _on_bucket(lambda kv: _delete_set(kv, str(key))):
        raise Failed(f"{key} is not set: nothing to unset (the service keeps its start value)")
    _print([{"key": str(key), "value": None}], as_json, ("key", "value"))


@cli.command()
def history(service: Service, setting: Setting, as_json: AsJson = False) -> None:
    """The revisions kept of a setting, oldest first (each `set` and `unset`)."""
    key = str(_live(service, setting))

    async def entries(kv: KeyValue) -> list[KeyValue.Entry]:
        try:
            return await kv.history(key)
        except NoKeysError:
            raise Failed(f"{key} has no history") from None

    rows = [_row(entry) for entry in _on_bucket(entries)]
    _print(rows, as_json, ("revision", "time", "operation", "value"))


def main(argv: list[str] | None = None, prog: str = PROG) -> None:
    """Run the command of `argv` (else sys.argv), its messages headed `prog` (`strata config`
    when the `strata` entry point runs it)."""
    run(cli, prog, argv)
