"""`strata-config` (and `strata config`) as an operator meets it: a real process on the real
NATS bucket."""

import os
from collections.abc import Iterator

import pytest

from embedded.main import main as strata
from sidecar.cli import main
from tests.support.config import (
    bucket_environment,
    delete_bucket,
    strata_config,
    strata_config_json,
)
from tests.support.nats import require_nats
from tests.support.processes import cli_json, entry_point, free_port

SERVICE = "write-payments"
STRATA = entry_point("strata")


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    environment = bucket_environment(require_nats())
    yield environment
    delete_bucket(environment)


def test_set_get_unset_and_history(env: dict[str, str]) -> None:
    first = strata_config_json(env, "set", SERVICE, "breaker_failure_threshold", "3")
    assert first == [{"key": f"{SERVICE}.breaker_failure_threshold", "value": 3, "revision": 1}]
    strata_config_json(env, "set", SERVICE, "breaker_failure_threshold", "4")
    strata_config_json(env, "set", SERVICE, "log_level", "debug")  # a bare word is a string

    values = strata_config_json(env, "get", SERVICE)
    assert {row["key"]: row["value"] for row in values} == {
        f"{SERVICE}.breaker_failure_threshold": 4,
        f"{SERVICE}.log_level": "debug",
    }
    strata_config_json(env, "unset", SERVICE, "breaker_failure_threshold")
    unset = strata_config(env, "get", SERVICE, "breaker_failure_threshold")
    assert unset.returncode == 1
    assert unset.stderr.strip().endswith("is not set (the service keeps its start value)")

    history = strata_config_json(env, "history", SERVICE, "breaker_failure_threshold")
    assert [(row["operation"], row["value"]) for row in history] == [
        ("set", 3),
        ("set", 4),
        ("unset", None),
    ]
    assert all(row["time"] for row in history)


def test_a_value_is_stored_as_the_service_reads_it(env: dict[str, str]) -> None:
    [stored] = strata_config_json(env, "set", SERVICE, "breaker_recovery_seconds", "2")
    assert stored["value"] == 2.0
    assert isinstance(stored["value"], float)
    [read] = strata_config_json(env, "get", SERVICE, "breaker_recovery_seconds")
    assert (read["value"], isinstance(read["value"], float)) == (2.0, True)


def test_a_human_gets_a_table(env: dict[str, str]) -> None:
    strata_config_json(env, "set", SERVICE, "feature_flags", '{"new-checkout": true}')
    shown = strata_config({**env, "COLUMNS": "160"}, "get", SERVICE)  # a wide terminal
    assert shown.returncode == 0
    assert f"{SERVICE}.feature_flags" in shown.stdout
    assert '{"new-checkout": true}' in shown.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((SERVICE, "port", "9000"), "port is read at start only (a restart takes it)"),
        ((SERVICE, "colour", "1"), "no setting 'colour'"),
        ((SERVICE, "breaker_failure_threshold", "0"), "greater than or equal to 1"),
        ((SERVICE, "breaker_failure_threshold", "2.5"), "a valid integer"),
        ((SERVICE, "breaker_failure_threshold", "1e3"), "a valid integer"),
        ((SERVICE, "breaker_failure_threshold", '"3"'), 'a number, not "3"'),
        ((SERVICE, "breaker_failure_threshold", "-1"), "greater than or equal to 1"),
        ((SERVICE, "breaker_recovery_seconds", "-0.5"), "greater than 0"),
        ((SERVICE, "breaker_recovery_seconds", '"2.5"'), 'a number, not "2.5"'),
        ((SERVICE, "feature_flags", '{"\\u0000": true}'), "is not a flag name"),
        ((SERVICE, "feature_flags", '{"' + "f" * 5000 + '": true}'), "(5000 characters)"),
        ((SERVICE, "rate_limit_default", "0/second"), "has a zero"),
        ((SERVICE, "breaker_recovery_seconds", "soon"), 'a number, not "soon"'),
        ((SERVICE, "log_level", "loud"), "log_level"),
        ((SERVICE, "breaker_failure_threshold", "true"), "a number, not true"),
        ((SERVICE, "breaker_recovery_seconds", "true"), "a number, not true"),
        (("bff-mobile", "rate_limit_default", "5/99999999999999999 years"), "too long a period"),
        ((SERVICE, "rate_limit_default", "99999999999999999999999/second"), "lets too many"),
        (
            (SERVICE, "feature_flags", '{"a": true, "a": false}'),
            "feature_flags.a: the member 'a' appears twice in one object",
        ),
        ((SERVICE, "rate_limit_routes", '{"GET /x": "1/second", "GET /x": "2/second"}'), "twice"),
        (("write-nowhere", "log_level", "debug"), "no service 'write-nowhere'"),
        pytest.param(
            (SERVICE, "feature_flags", "[" * 5_000 + "]" * 5_000), "nested too deeply", id="deep"
        ),
    ],
)
def test_a_refused_set_is_one_line_with_exit_code_2(
    arguments: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process: the checks come before any connection."""
    with pytest.raises(SystemExit) as exited:
        main(["set", *arguments])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("strata-config: ")
    assert message in error


def test_a_refused_set_writes_nothing(env: dict[str, str]) -> None:
    refused = strata_config(env, "set", SERVICE, "port", "9000")
    assert (refused.returncode, refused.stderr.count("\n")) == (2, 1)
    for value in ("-1", '"3"', "1e3"):
        bad = strata_config(env, "set", SERVICE, "breaker_failure_threshold", value)
        assert (bad.returncode, bad.stderr.count("\n")) == (2, 1), bad.stderr
        assert "Invalid value for VALUE: breaker_failure_threshold: " in bad.stderr
    never = strata_config(env, "history", SERVICE, "breaker_failure_threshold")
    assert never.returncode == 1, never.stdout
    nothing = strata_config(env, "history", SERVICE, "port")
    assert nothing.returncode == 2  # not a live setting: no key of it can exist
    assert strata_config(env, "get", SERVICE).stdout.count(SERVICE) == 0


def test_unset_of_a_key_not_set_writes_nothing(env: dict[str, str]) -> None:
    strata_config_json(env, "set", SERVICE, "log_level", "debug")
    strata_config_json(env, "unset", SERVICE, "log_level")
    for setting in ("log_level", "breaker_failure_threshold"):  # unset already, never set
        nothing = strata_config(env, "unset", SERVICE, setting)
        assert (nothing.returncode, nothing.stderr.count("\n")) == (1, 1)
        assert f"{SERVICE}.{setting} is not set: nothing to unset" in nothing.stderr
    history = strata_config_json(env, "history", SERVICE, "log_level")
    assert [(row["operation"], row["value"]) for row in history] == [
        ("set", "debug"),
        ("unset", None),
    ]
    assert strata_config(env, "history", SERVICE, "breaker_failure_threshold").returncode == 1


def test_nats_unreachable_is_one_line_exit_1() -> None:
    env = {"STRATA_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    failed = strata_config(env, "get", SERVICE)
    assert failed.returncode == 1
    assert failed.stderr.startswith("strata-config: NATS at ")
    assert failed.stderr.count("\n") == 1


def test_strata_config_is_the_same_command(env: dict[str, str]) -> None:
    """`strata config ...` (the `strata` entry point) writes what `strata-config` reads."""
    assert STRATA, "strata is not installed"
    setting = ("config", "set", SERVICE, "log_level", "debug")
    written = cli_json(STRATA, {**os.environ, **env}, *setting)
    assert written[0]["key"] == f"{SERVICE}.log_level"
    values = strata_config_json(env, "get", SERVICE, "log_level")
    assert [row["value"] for row in values] == ["debug"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve"], "strata: no command 'serve'; usage: strata [config "),
        (["config", "set", "write-nowhere", "log_level", "x"], "strata config: Invalid value"),
        (["config", "set", "relay-users", "breaker_failure_threshold", "2"], "not taken live"),
        (["config", "sett"], "strata config: No such command 'sett'"),
    ],
)
def test_strata_refuses_bad_arguments_in_one_line_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        strata(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert message in error


def test_strata_help_says_what_it_runs_and_where_its_settings_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    strata(["--help"])

    shown = capsys.readouterr().out
    assert "serve the whole system on the embedded default" in shown
    assert "strata config" in shown
    assert "STRATA_PORT" in shown
