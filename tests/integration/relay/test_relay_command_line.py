"""The relay's command line: a bad argument, or settings without the stack mode, is one line
on stderr and a non-zero exit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.relay_processes import ROOT

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        ([], 2, "Missing option '--context'"),
        (["--context", "billing"], 2, "'billing' is not one of 'users', 'orders'"),
        (["--context", "users"], 1, "the relay needs the stack mode"),
    ],
)
def test_the_command_line_refuses_bad_arguments_and_the_embedded_mode_in_one_line(
    argv: list[str], code: int, fragment: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("STRATA_USERS_DATABASE_URL", "STRATA_ORDERS_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "eventlog.relay_main", *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("strata-relay: ") and fragment in line
