"""Setting values that need more than a type: feature flags' names, and JSON read from the
environment as every JSON input of the system is (runtime/settings.py uses both)."""

import re
from typing import Annotated, Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, StrictBool
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource
from redis.connection import parse_url

from runtime.http.json_bodies import DuplicateMember, loads_unique

FLAG_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
"""A feature flag's name (docs/config.md): a lowercase letter, then lowercase letters, digits,
'_', '.' or '-', 64 characters at most; what /metrics shows as `strata_feature_flag{flag}`."""
SHOWN_NAME = 40
"""At most this much of a bad flag name is quoted in its error."""


def _flag_names(flags: dict[str, bool]) -> dict[str, bool]:
    for name in flags:
        if FLAG_NAME.fullmatch(name) is None:
            shown = name if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]}…"
            raise ValueError(
                f"{shown!r} ({len(name)} characters) is not a flag name: a lowercase letter,"
                " then lowercase letters, digits, '_', '.' or '-', 64 characters at most"
            )
    return flags


# The check in the type, not the model: a live value (runtime/live_settings.py) is checked
# against the field alone.
FeatureFlags = Annotated[dict[str, StrictBool], AfterValidator(_flag_names)]


def _postgres_url(url: str) -> str:
    try:
        conninfo_to_dict(url)
    except psycopg.Error as error:
        raise ValueError(f"not a PostgreSQL URL: {str(error).strip()}") from None
    return url


def _redis_url(url: str) -> str:
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as error:
        raise ValueError(f"not a Redis URL: {error}") from None
    return url


def _http_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValueError(f"not an HTTP URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an HTTP URL: {url!r} (http:// or https://, then a host)")
    return url


# Checked at start, so a URL no client can use stops the process with the one line naming its
# variable, not a traceback when the first connection is made.
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
"""A PostgreSQL URL (or libpq's `key=value` connection string) that psycopg can read."""
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
"""A `redis://`, `rediss://` or `unix://` URL that redis-py can read."""
HttpUrlText = Annotated[str, AfterValidator(_http_url)]
"""An `http://` or `https://` URL with a host, kept as given (a provider's base URL, a key set's
or a token endpoint's address): not a provider's job failing on every attempt once it runs."""


class UnreadableSetting(ValueError):
    """A JSON setting in the environment that is not JSON, or names a member twice; the message
    names its variable."""


class UniqueJsonEnvironment(EnvSettingsSource):
    """The environment, its JSON values (objects, lists) read as every JSON input of the system:
    an object naming a member twice is refused rather than its last value kept."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        variable = f"{self.env_prefix}{field_name}".upper()
        try:
            return loads_unique(value.encode() if isinstance(value, str) else value)
        except DuplicateMember as error:
            raise UnreadableSetting(f"{variable}: {error}: the value is ambiguous") from None
        except ValueError as error:
            raise UnreadableSetting(f"{variable}: not JSON ({error})") from None
