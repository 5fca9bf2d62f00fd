"""The JSON settings in the environment, read at start: a bad one stops the process with one
line naming its variable (`runtime.settings.load_settings`), as strict as a live value."""

import pytest

from runtime.settings import CommonSettings, load_settings, settings_model


def _refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings("strata-test", CommonSettings)
    message = str(stopped.value.code)
    assert message.startswith("strata-test: invalid settings: ")
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('{"a": 1}', "STRATA_FEATURE_FLAGS (at a): Input should be a valid boolean"),
        ('{"a": true, "a": false}', "STRATA_FEATURE_FLAGS: the member 'a' appears twice"),
        ('{"\\u0000": true}', "STRATA_FEATURE_FLAGS: Value error, '\\x00' (1 characters)"),
        ('{"' + "x" * 5000 + '": true}', "(5000 characters) is not a flag name"),
        ('{"Checkout": true}', "is not a flag name"),
        ("{not json", "STRATA_FEATURE_FLAGS: not JSON"),
    ],
)
def test_a_bad_feature_flags_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str, named: str
) -> None:
    message = _refused(monkeypatch, "STRATA_FEATURE_FLAGS", value)
    assert named in message
    assert "STRATA_FEATURE_FLAGS_" not in message  # no such variable


def test_every_json_variable_refuses_a_repeated_member(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = '{"GET /x": "1/second", "GET /x": "2/second"}'
    message = _refused(monkeypatch, "STRATA_RATE_LIMIT_ROUTES", routes)
    assert "STRATA_RATE_LIMIT_ROUTES: the member 'GET /x' appears twice" in message


def test_the_flags_in_use_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_FEATURE_FLAGS", '{"web-dashboard-leaderboard": false}')
    assert CommonSettings().feature_flags == {"web-dashboard-leaderboard": False}


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("STRATA_READ_DATABASE_URL", "mysql://x", "STRATA_READ_DATABASE_URL: Value error, not a"),
        ("STRATA_READ_REPLICA_URL", "postgresql://[::1", "STRATA_READ_REPLICA_URL: Value error"),
        ("STRATA_REDIS_URL", "redis://:99999", "STRATA_REDIS_URL: Value error, not a Redis URL"),
        ("STRATA_REDIS_URL", "http://127.0.0.1:6379", "STRATA_REDIS_URL: Value error, not a"),
        ("STRATA_PAYMENT_PROVIDER_URL", "notaurl", "STRATA_PAYMENT_PROVIDER_URL: Value error, not"),
        ("STRATA_CARRIER_URL", "ftp://carrier", "STRATA_CARRIER_URL: Value error, not an HTTP URL"),
        ("STRATA_CARRIER_URL", "http://", "STRATA_CARRIER_URL: Value error, not an HTTP URL"),
        ("STRATA_JWKS_URL", "keys.json", "STRATA_JWKS_URL: Value error, not an HTTP URL"),
        ("STRATA_SERVICE_TOKEN_URL", "http://[::1", "STRATA_SERVICE_TOKEN_URL: Value error, not"),
    ],
)
def test_a_url_no_client_can_read_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    """At start, not as a traceback when the first connection is made."""
    assert named in _refused(monkeypatch, variable, value)


def test_an_event_stores_url_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    model = settings_model(("users",))
    monkeypatch.setenv("STRATA_USERS_DATABASE_URL", "mysql://x")
    with pytest.raises(SystemExit) as stopped:
        load_settings("strata-test", model)
    assert "STRATA_USERS_DATABASE_URL: Value error, not a PostgreSQL URL" in str(stopped.value)
    for fine in ("postgresql://postgres@127.0.0.1:5432/x", "host=db dbname=x"):
        monkeypatch.setenv("STRATA_USERS_DATABASE_URL", fine)
        assert load_settings("strata-test", model).database_url("users") == fine


def test_an_http_url_is_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("http://127.0.0.1:8100", "https://provider.example/sandbox/v2"):
        monkeypatch.setenv("STRATA_PAYMENT_PROVIDER_URL", url)
        assert CommonSettings().payment_provider_url == url
