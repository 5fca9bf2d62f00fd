"""Live settings (runtime/live_settings.py): which fields are live, their validation, the hooks,
the file a sidecar hands them over in, what the sidecar takes of the bucket's entries, and a
breaker taking new thresholds; no network."""

from pathlib import Path

import pytest
from nats.js.kv import KV_DEL, KeyValue
from prometheus_client import CollectorRegistry

from contexts.deployment import live_services
from runtime.live_settings import (
    LiveDocument,
    LiveSettings,
    LiveSettingsFile,
    NotLive,
    live_fields,
    validate_live,
)
from runtime.rate_limits import RATE_LIMIT_SETTINGS
from runtime.resilience import (
    BREAKER_SETTINGS,
    BreakerOpen,
    CircuitBreaker,
    DownstreamUnavailable,
    breaker_metrics,
)
from runtime.settings import CommonSettings
from sidecar.follower import ServiceConfig, SidecarMetrics
from sidecar.services import UnknownService, service_settings

TOO_LONG = "has too long a period: at most 3650 days"


def test_the_live_fields_are_the_marked_ones() -> None:
    assert set(live_fields(CommonSettings)) == {
        "log_level",
        "feature_flags",
        *BREAKER_SETTINGS,
        *RATE_LIMIT_SETTINGS,
    }


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"port": 1}, NotLive, "port is read at start only"),
        ({"colour": 1}, NotLive, "no setting 'colour'"),
        ({"breaker_failure_threshold": 0}, ValueError, "greater than or equal to 1"),
        ({"log_level": "loud"}, ValueError, "log_level"),
        ({"feature_flags": {"x": "maybe"}}, ValueError, "feature_flags.x"),
        ({"feature_flags": {"x": "yes"}}, ValueError, "feature_flags.x"),
        ({"feature_flags": {"x": 1}}, ValueError, "feature_flags.x"),
        ({"rate_limit_default": "lots"}, ValueError, "'lots' is not a rate limit"),
        ({"rate_limit_default": "0/second"}, ValueError, "'0/second' has a zero"),
        ({"rate_limit_default": "10/second;0/hour"}, ValueError, "has a zero"),
        ({"rate_limit_default": "10 per 0 minute"}, ValueError, "has a zero"),
        ({"rate_limit_routes": {"GET /x": "5/00 second"}}, ValueError, "of GET /x has a zero"),
        ({"rate_limit_routes": {"/x": "1/minute"}}, ValueError, "<METHOD> /"),
        ({"rate_limit_roles": {"operator": "1/fortnight"}}, ValueError, "of role operator"),
        ({"rate_limit_roles": {"admin": "1/second"}}, ValueError, "'operator' or 'service'"),
        ({"rate_limit_strategy": "fixed-window"}, NotLive, "read at start only"),
        ({"rate_limit_default": "5/99999999999999999 years"}, ValueError, TOO_LONG),
        ({"rate_limit_default": "1/3651 days"}, ValueError, TOO_LONG),
        ({"rate_limit_default": "1/11 years"}, ValueError, TOO_LONG),
        ({"rate_limit_default": "99999999999999999999999/second"}, ValueError, "too many"),
        ({"rate_limit_default": "1000000001/day"}, ValueError, "at most 1000000000 per period"),
        ({"rate_limit_routes": {"GET /x": "1/9999999 days"}}, ValueError, "of GET /x has too"),
        ({"rate_limit_roles": {"service": "1e12/second"}}, ValueError, "not a rate limit"),
        ({"rate_limit_roles": {"service": "2000000000/second"}}, ValueError, "of role service"),
        ({"breaker_failure_threshold": True}, ValueError, "a number, not true"),
        ({"breaker_failure_threshold": False}, ValueError, "a number, not false"),
        ({"breaker_recovery_seconds": True}, ValueError, "a number, not true"),
        ({"breaker_failure_threshold": "3"}, ValueError, 'a number, not "3"'),
        ({"breaker_recovery_seconds": "2.5"}, ValueError, 'a number, not "2.5"'),
        ({"breaker_failure_threshold": 1e3}, ValueError, "a valid integer"),
        ({"breaker_failure_threshold": 3.0}, ValueError, "a valid integer"),
        ({"breaker_failure_threshold": -1}, ValueError, "greater than or equal to 1"),
        (
            {"feature_flags": {"\u0000": True}},
            ValueError,
            r"'\\x00' \(1 characters\) is not a flag name",
        ),
        ({"feature_flags": {"x" * 5000: True}}, ValueError, "5000 characters"),
        ({"feature_flags": {"x" * 65: True}}, ValueError, "64 characters at most"),
        ({"feature_flags": {"New-checkout": True}}, ValueError, "not a flag name"),
        ({"feature_flags": {"1st": True}}, ValueError, "not a flag name"),
        ({"feature_flags": {"": True}}, ValueError, "not a flag name"),
        ({"feature_flags": {"a b": True}}, ValueError, "not a flag name"),
        ({"breaker_recovery_seconds": "nan"}, ValueError, 'a number, not "nan"'),
        ({"breaker_recovery_seconds": float("nan")}, ValueError, "finite number"),
        ({"breaker_recovery_seconds": float("inf")}, ValueError, "finite number"),
    ],
)
def test_a_bad_value_is_named(values: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        validate_live(CommonSettings, values)


def test_the_largest_limits_are_taken() -> None:
    """tests/component/test_rate_limits.py counts them in Redis."""
    for text in ("1000000000/3650 days", "1/10 years", "1000000000/second;5/120 months"):
        assert validate_live(CommonSettings, {"rate_limit_default": text})


def test_no_live_setting_takes_a_boolean_for_anything_else() -> None:
    """A live value arrives as JSON, where `true` is no number (pydantic's lax mode reads 1)."""
    for name in live_fields(CommonSettings):
        with pytest.raises(ValueError, match=name):
            validate_live(CommonSettings, {name: True})
    with pytest.raises(ValueError, match="breaker_failure_threshold"):
        LiveSettings(CommonSettings()).apply({"breaker_failure_threshold": True})


def test_numbers_are_still_read_from_the_environments_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATA_BREAKER_FAILURE_THRESHOLD", "3")
    monkeypatch.setenv("STRATA_BREAKER_RECOVERY_SECONDS", "2.5")
    settings = CommonSettings()
    assert (settings.breaker_failure_threshold, settings.breaker_recovery_seconds) == (3, 2.5)
    valid = validate_live(CommonSettings, {"breaker_recovery_seconds": 2})
    assert valid == {"breaker_recovery_seconds": 2.0}  # a JSON integer is a number


def test_the_flag_names_in_use_are_flag_names() -> None:
    flags = {"web-dashboard-leaderboard": False, "new-checkout": True, "a.b_c-1": True}
    assert validate_live(CommonSettings, {"feature_flags": flags}) == {"feature_flags": flags}
    assert validate_live(CommonSettings, {"feature_flags": {"x" * 64: True}})


def test_a_service_takes_only_the_live_settings_it_uses() -> None:
    relay = service_settings("relay-payments")
    assert validate_live(relay.model, {"log_level": "debug"}, relay.live) == {"log_level": "debug"}
    with pytest.raises(NotLive, match="breaker_failure_threshold is not taken live"):
        validate_live(relay.model, {"breaker_failure_threshold": 2}, relay.live)
    bff = service_settings("bff-web")
    assert validate_live(bff.model, {"rate_limit_default": "5/second"}, bff.live)


def test_every_service_with_a_sidecar_has_settings_and_takes_only_live_fields() -> None:
    for service in live_services():
        settings = service_settings(service.name)
        assert {"log_level", "feature_flags"} <= set(settings.live), service.name
        assert set(settings.live) <= set(live_fields(settings.model)), service.name
    with pytest.raises(UnknownService, match="no service 'nowhere'; services: identity, "):
        service_settings("nowhere")


def test_apply_calls_the_hooks_of_the_changed_fields_only() -> None:
    live = LiveSettings(CommonSettings())
    calls: list[str] = []
    live.on_change({"log_level"}, lambda s: calls.append(f"log {s.log_level}"))
    live.on_change(
        BREAKER_SETTINGS, lambda s: calls.append(f"breaker {s.breaker_failure_threshold}")
    )
    assert live.apply({"log_level": "debug"}) == {"log_level"}
    assert live.apply({"log_level": "debug", "breaker_failure_threshold": 2}) == {
        "breaker_failure_threshold"
    }
    assert calls == ["log debug", "breaker 2"]
    assert live.apply({}) == {"log_level", "breaker_failure_threshold"}  # back to the start
    assert live.current.log_level == "info"


def test_a_bad_set_of_overrides_changes_nothing() -> None:
    live = LiveSettings(CommonSettings())
    live.apply({"breaker_failure_threshold": 2})
    with pytest.raises(ValueError, match="breaker_recovery_seconds"):
        live.apply({"breaker_failure_threshold": 3, "breaker_recovery_seconds": -1})
    assert live.current.breaker_failure_threshold == 2


def test_a_hook_on_a_setting_read_at_start_is_refused() -> None:
    with pytest.raises(NotLive, match="port"):
        LiveSettings(CommonSettings()).on_change({"port"}, lambda s: None)


def test_the_file_is_replaced_whole_and_read_back(tmp_path: Path) -> None:
    file = LiveSettingsFile(tmp_path / "live" / "write-payments.json")
    assert file.read() is None
    file.write(LiveDocument("write-payments", 3, {"log_level": "debug"}))
    file.write(LiveDocument("write-payments", 4, {"log_level": "error"}))
    assert file.read() == LiveDocument("write-payments", 4, {"log_level": "error"})
    assert [p.name for p in file.path.parent.iterdir()] == ["write-payments.json"]
    file.path.write_text("{")
    with pytest.raises(ValueError, match="not a live settings document"):
        file.read()


def test_a_breaker_takes_a_lower_threshold_while_it_runs() -> None:
    registry = CollectorRegistry()
    breaker = CircuitBreaker(
        "provider", failure_threshold=5, recovery_seconds=60, metrics=breaker_metrics(registry)
    )
    live = LiveSettings(CommonSettings())
    live.on_change(BREAKER_SETTINGS, breaker.follow)
    live.apply({"breaker_failure_threshold": 2})
    assert (
        registry.get_sample_value("strata_breaker_failure_threshold", {"downstream": "provider"})
        == 2
    )

    def fail() -> None:
        raise DownstreamUnavailable("down")

    for _ in range(2):
        with pytest.raises(DownstreamUnavailable):
            breaker.call(fail)
    with pytest.raises(BreakerOpen):
        breaker.call(fail)


def _entry(key: str, revision: int, value: bytes | None = None) -> KeyValue.Entry:
    operation = KV_DEL if value is None else None
    return KeyValue.Entry("strata_config", key, value, revision, None, None, operation)


def _updates(registry: CollectorRegistry, setting: str, outcome: str) -> float | None:
    labels = {"service": "write-payments", "setting": setting, "outcome": outcome}
    return registry.get_sample_value("strata_config_updates_total", labels)


def test_the_sidecar_hands_on_good_values_and_counts_each_entry_as_it_was() -> None:
    registry = CollectorRegistry()
    config = ServiceConfig(
        "write-payments", service_settings("write-payments"), SidecarMetrics(registry, "x")
    )
    threshold = "write-payments.breaker_failure_threshold"
    entries = [
        (_entry(threshold, 1, b"2"), True),
        (_entry(threshold, 2, b"true"), False),  # a boolean is no number
        (_entry("write-payments.breaker_recovery_seconds", 3, b"true"), False),
        (_entry("write-payments.feature_flags", 4, b'{"a": true, "a": false}'), False),
        (_entry("write-payments.feature_flags", 10, b"[" * 30_000 + b"]" * 30_000), False),
        (_entry("write-payments.port", 5, b"9000"), False),  # read at start only
        (_entry("write-payments.port", 6), False),  # its deletion changes nothing
        (_entry("write-payments.nosuch", 7), False),
        (_entry("write-payments.made-up-1", 11, b"1"), False),
        (_entry("write-payments.made-up-2", 12, b"2"), False),
        (_entry("write-payments.log_level", 8), False),  # never set
        (_entry(threshold, 9), True),  # back to the start value
    ]
    assert [config.take(entry) for entry, _ in entries] == [taken for _, taken in entries]
    assert config.document().settings == {}
    assert config.revision == 9  # the last good entry's
    assert _updates(registry, "breaker_failure_threshold", "applied") == 2
    assert _updates(registry, "breaker_failure_threshold", "rejected") == 1
    assert _updates(registry, "breaker_recovery_seconds", "rejected") == 1
    assert _updates(registry, "feature_flags", "rejected") == 2  # a duplicate; too deep
    assert _updates(registry, "port", "rejected") == 1
    assert _updates(registry, "port", "applied") is None
    assert _updates(registry, "port", "ignored") == 1
    assert _updates(registry, "(unknown)", "ignored") == 1  # not a label per made-up key
    assert _updates(registry, "(unknown)", "rejected") == 2
    assert _updates(registry, "nosuch", "ignored") is None
    assert _updates(registry, "log_level", "ignored") == 1


def test_a_bucket_created_again_is_taken_from_revision_1_keeping_the_last_good_values() -> None:
    config = ServiceConfig(
        "write-payments",
        service_settings("write-payments"),
        SidecarMetrics(CollectorRegistry(), "x"),
    )
    assert config.take(_entry("write-payments.breaker_failure_threshold", 4, b"2"))
    assert config.take(_entry("write-payments.log_level", 5, b'"debug"'))
    assert not config.take(_entry("write-payments.log_level", 1, b'"info"'))  # seen: resync
    config.new_bucket()
    assert config.take(_entry("write-payments.log_level", 1, b'"warning"'))
    assert config.document().settings == {"breaker_failure_threshold": 2, "log_level": "warning"}
    assert config.revision == 1
