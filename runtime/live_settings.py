"""Settings that change while a service runs (hot reload), and the file that carries them.

The fields of a settings model marked `LIVE` (runtime/settings.py) are its live settings: log
level, feature flags, breaker thresholds, and whatever a module adds by marking its own fields (the
rate limits). `live_model(model)` is the pydantic model of those fields alone; a value is valid
where it validates there, with the same bounds as at start, and stricter in one way: live values
arrive as JSON (the CLI, the bucket, the file), so a number field takes a JSON number of its
type alone there: an integer field refuses `"3"`, `1e3` and `3.0`, and any number field a string
or a boolean (pydantic's lax mode reads `"3"` as 3 and `true` as 1; the environment's strings,
read at start by the full model, are unaffected).

`LiveSettings` holds a running service's settings: the ones it started with, overridden by the
live values it was handed since. Parts of the service register a hook for the fields they use
(`on_change`); `apply` validates a new set of overrides as a whole, keeps the old one when any
value is bad, and calls each hook whose fields changed.

`LiveSettingsFile` is how a config sidecar hands the values over (sidecar/, docs/config.md): one
JSON document per service, `{"service", "revision", "settings"}`, replaced atomically (written to
a temporary file in the same folder, flushed, then renamed over the old one), so a reader sees the
old document or the new one, never half of either.
"""

import json
import logging
import os
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from runtime.settings import CommonSettings

log = logging.getLogger("strata.live_settings")

Hook = Callable[[CommonSettings], None]


class NotLive(ValueError):
    """A setting that a running service cannot take: unknown, or read only at start."""


def live_fields(model: type[CommonSettings]) -> tuple[str, ...]:
    """The names of the model's fields that may change while a service runs."""
    return tuple(
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("live")
    )


def _json_number(value: Any) -> Any:
    """`value` unless it is a boolean or a string, which JSON does not read as numbers."""
    if isinstance(value, bool | str):
        raise PydanticCustomError(
            "json_is_not_a_number",
            "Input should be a number, not {value}",
            {"value": json.dumps(value)[:40]},
        )
    return value


def _json_strict(annotation: Any) -> Any:
    """The annotation of a live field: a number's takes a JSON number only, as the field
    declares it (strict: an integer's no `1e3` nor `3.0`, neither a string nor a boolean)."""
    if annotation in (int, float):
        return Annotated[annotation, BeforeValidator(_json_number), Strict()]
    return annotation


@cache
def live_model(model: type[CommonSettings]) -> type[BaseModel]:
    """The model of `model`'s live fields alone, with their types, bounds and defaults (a number
    refusing a boolean); any other key is refused."""
    fields: dict[str, Any] = {
        name: (_json_strict(model.model_fields[name].annotation), model.model_fields[name])
        for name in live_fields(model)
    }
    config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    return create_model(f"Live{model.__name__}", __config__=config, **fields)


def check_live(
    model: type[CommonSettings], name: str, taken: Collection[str] | None = None
) -> None:
    """Raise `NotLive` unless `name` is a live field of the model that the service takes
    (`taken`: a service with no use for some live fields names those it has; default: all)."""
    live = live_fields(model) if taken is None else tuple(taken)
    if name in live:
        return
    listed = ", ".join(live)
    if name in live_fields(model):
        raise NotLive(
            f"{name} is not taken live by this service (nothing in it uses it); live: {listed}"
        )
    if name in model.model_fields:
        raise NotLive(f"{name} is read at start only (a restart takes it); live: {listed}")
    raise NotLive(f"no setting {name!r}; live settings: {listed}")


def validate_live(
    model: type[CommonSettings],
    values: Mapping[str, Any],
    taken: Collection[str] | None = None,
) -> dict[str, Any]:
    """The values, validated against the model's live fields (only those given are returned).

    Raises `NotLive` for a key that is not a live field (of those `taken`), `ValueError` naming
    the first bad value.
    """
    for name in values:
        check_live(model, name, taken)
    try:
        valid = live_model(model).model_validate(dict(values))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None
    return {name: getattr(valid, name) for name in values}


class LiveSettings:
    """A running service's settings: those it started with and the live values handed to it."""

    def __init__(self, started: CommonSettings) -> None:
        self._started = started
        self._current = started
        self._hooks: list[tuple[frozenset[str], Hook]] = []
        self._checks: list[Hook] = []

    @property
    def current(self) -> CommonSettings:
        return self._current

    def on_change(self, fields: Collection[str], hook: Hook) -> None:
        """Call `hook(settings)` whenever one of `fields` changes (not now: the caller built
        its part from `current`)."""
        unknown = set(fields) - set(live_fields(type(self._started)))
        if unknown:
            raise NotLive(f"not live settings: {', '.join(sorted(unknown))}")
        self._hooks.append((frozenset(fields), hook))

    def add_check(self, check: Hook) -> None:
        """Have `check(settings)` judge every new set of live values before it is taken: what
        the model alone cannot (a rate limit of a route this service does not have). A
        `ValueError` from it refuses the whole set, like a bad value."""
        self._checks.append(check)

    def apply(self, overrides: Mapping[str, Any]) -> frozenset[str]:
        """Take `overrides` over the settings the service started with (a live field missing
        from them returns to its start value); the names of the fields that changed.

        Raises `NotLive` or `ValueError`, and changes nothing, when any value is bad.
        """
        valid = validate_live(type(self._started), overrides)
        settings = self._started.model_copy(update=valid)
        for check in self._checks:
            check(settings)
        changed = frozenset(
            name
            for name in live_fields(type(settings))
            if getattr(settings, name) != getattr(self._current, name)
        )
        self._current = settings
        for fields, hook in self._hooks:
            if fields & changed:
                hook(settings)
        return changed


@dataclass(frozen=True)
class LiveDocument:
    """What a sidecar hands to its service: the live values as of a revision of the bucket."""

    service: str
    revision: int
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class LiveSettingsFile:
    path: Path

    def read(self) -> LiveDocument | None:
        """The document, or None when there is none yet; raises ValueError when unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            return LiveDocument(str(data["service"]), int(data["revision"]), dict(data["settings"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.path}: not a live settings document: {error}") from None

    def write(self, document: LiveDocument) -> None:
        """Replace the document atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "service": document.service,
            "revision": document.revision,
            "settings": dict(document.settings),
        }
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(body, file, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def attach_live_settings(app: FastAPI, live: LiveSettings) -> None:
    """Make `live` the app's live settings, for the parts that follow them (before they start:
    the app's own lifespan runs before those of the routers it includes)."""
    app.state.live_settings = live


def add_live_check(app: FastAPI, check: Hook) -> None:
    """Have the app's live settings judge every set of live values with `check` (see
    `LiveSettings.add_check`), the first one, read when the service starts, included."""
    app.state.live_checks = [*getattr(app.state, "live_checks", []), check]


def adopt_live_checks(app: FastAPI, live: LiveSettings) -> None:
    """Give `live` the app's checks: call it before the first live values are applied."""
    for check in getattr(app.state, "live_checks", []):
        live.add_check(check)


def live_settings_of(app: FastAPI) -> LiveSettings | None:
    """The live settings attached to the app, if any."""
    live: LiveSettings | None = getattr(app.state, "live_settings", None)
    return live
