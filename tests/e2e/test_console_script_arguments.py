"""Every console script of pyproject.toml refuses an argument it does not know: one line on
stderr, exit code 2, and nothing started (README: a bad CLI argument gets a one-line error and a
non-zero exit)."""

import subprocess
import tomllib
from pathlib import Path

import pytest

from bff.settings import BffSettings
from tests.support.processes import entry_point, free_port, without_strata_variables

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
SCRIPTS = sorted(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"])
PROMPTLY = 30
"""Seconds: a script that started serving instead of refusing runs until this ends it."""


def test_the_scripts_are_read_from_pyproject() -> None:
    assert {"strata", "strata-bff-web", "strata-projector", "strata-config"} <= set(SCRIPTS)


@pytest.mark.parametrize("argument", ["--bogus-option", "bogus-argument"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_argument_is_one_line_and_exit_2(
    script: str, argument: str, tmp_path: Path
) -> None:
    path = entry_point(script)
    assert path, f"{script} is not installed"
    done = subprocess.run(
        [path, argument],
        env=_scratch_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=PROMPTLY,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"{script}: "), done.stderr
    assert done.stdout == ""  # no banner: nothing was started
    assert list(tmp_path.iterdir()) == []  # no database file either


def _scratch_environment(data_dir: Path) -> dict[str, str]:
    """Were a script to start anyway: its data in `data_dir`, every port of the settings free."""
    ports = {
        f"STRATA_{name.upper()}": str(free_port())
        for name in BffSettings.model_fields
        if name == "port" or name.endswith("_port")
    }
    return without_strata_variables() | ports | {"STRATA_DATA_DIR": str(data_dir)}
