"""Instants as people type them, shared by the `replay` CLI and the `as_of` query parameter.

- ISO 8601: `2026-11-26T10:42:00Z`, `2026-11-26T11:42:00+01:00`, `2026-11-26 10:42`,
  `2026-11-26`; `t` and `z` in lower case too, as RFC 3339 allows. Without an offset the time
  is UTC.
- Relative to now, into the past: `-90s`, `-30m`, `-2h`, `-1d`, `-1w`, combined as `-1h30m`.
- `now`.

Every instant comes back timezone-aware, in UTC.
"""

import re
from datetime import UTC, datetime, timedelta

UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
RELATIVE = re.compile(r"-(?:\d{1,9}[wdhms])+")
PART = re.compile(r"(\d+)([wdhms])")
FORMS = (
    "ISO 8601 (e.g. 2026-11-26T10:42:00Z; no offset means UTC), now, or a time ago:"
    " -90s, -30m, -2h, -1d, -1w, -1h30m"
)


class NotAnInstant(ValueError):
    """The text is neither an ISO 8601 time nor a relative time."""


def parse_instant(text: str, *, now: datetime | None = None) -> datetime:
    """The instant `text` names, in UTC; relative times count back from `now` (default: now)."""
    value = text.strip()
    reference = now if now is not None else datetime.now(UTC)
    if value.lower() == "now":
        return reference.astimezone(UTC)
    if RELATIVE.fullmatch(value):
        return _relative(value, reference)
    try:
        instant = datetime.fromisoformat(value.upper())  # T and Z are its only letters
    except ValueError:
        raise NotAnInstant(f"{text!r} is not a time; use {FORMS}") from None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise NotAnInstant(f"{text!r} is out of range in UTC") from None


def _relative(value: str, reference: datetime) -> datetime:
    span = timedelta()
    try:
        for amount, unit in PART.findall(value):
            span += timedelta(**{UNITS[unit]: int(amount)})
        return (reference - span).astimezone(UTC)
    except OverflowError:
        raise NotAnInstant(f"{value!r} reaches before year 1") from None
