"""Instants as operators type them: ISO 8601 (naive means UTC) or relative to now."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runtime.instants import NotAnInstant, parse_instant

NOW = datetime(2026, 11, 26, 12, 0, 0, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T10:42:00Z", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26T10:42:00+00:00", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26T11:42:00+01:00", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26T05:42:00-05:00", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26T10:42:00", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),  # naive: UTC
        ("2026-11-26 10:42", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        ("20261126T104200Z", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        (
            "2026-11-26T10:42:00.123456Z",
            datetime(2026, 11, 26, 10, 42, 0, 123_456, tzinfo=UTC),
        ),
        ("  2026-11-26T10:42:00Z  ", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),
        ("2026-11-26t10:42:00z", datetime(2026, 11, 26, 10, 42, tzinfo=UTC)),  # RFC 3339 §5.6
    ],
)
def test_iso_8601_with_or_without_offset_comes_back_in_utc(text: str, expected: datetime) -> None:
    instant = parse_instant(text, now=NOW)
    assert instant == expected
    assert instant.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("-90s", timedelta(seconds=90)),
        ("-30m", timedelta(minutes=30)),
        ("-2h", timedelta(hours=2)),
        ("-1d", timedelta(days=1)),
        ("-1w", timedelta(weeks=1)),
        ("-1h30m", timedelta(hours=1, minutes=30)),
        ("-1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("-0s", timedelta()),
    ],
)
def test_relative_times_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_instant(text, now=NOW) == NOW - ago


def test_now_is_now_and_relative_times_default_to_the_clock() -> None:
    assert parse_instant("now", now=NOW) == NOW
    before = datetime.now(UTC)
    instant = parse_instant("-1h")
    after = datetime.now(UTC)
    assert before - timedelta(hours=1) <= instant <= after - timedelta(hours=1)


def test_a_reference_in_another_zone_still_gives_utc() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    instant = parse_instant("-1h", now=paris)
    assert instant == NOW - timedelta(hours=1)
    assert instant.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2h", "+2h", "-2", "-2x", "-h", "- 2h", "2026-13-01", "26/11/2026", "-1.5h"],
)
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(NotAnInstant, match=r"is not a time; use ISO 8601 .*, now, .* -1h30m$"):
        parse_instant(text, now=NOW)


@pytest.mark.parametrize("text", ["-999999999w", "0001-01-01T00:30:00+01:00"])
def test_instants_out_of_range_are_refused_not_crashed_on(text: str) -> None:
    with pytest.raises(NotAnInstant):
        parse_instant(text, now=NOW)


def test_not_an_instant_is_a_value_error() -> None:
    assert issubclass(NotAnInstant, ValueError)
