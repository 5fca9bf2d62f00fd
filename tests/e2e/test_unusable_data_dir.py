"""A `STRATA_DATA_DIR` that cannot be the data folder (a file is there, or its parent cannot
hold one) is a setting the process cannot start on: one line on stderr naming the variable,
exit code 1, nothing served (README: "Invalid settings stop every process with a one-line
error naming the variable"), not a traceback from the first file it opens."""

import os
from pathlib import Path

import pytest

from tests.support.processes import entry_point, free_port, run_cli

SCRIPTS = (("strata",), ("strata-write-api",), ("strata-identity", "serve"))
PORTS = ("STRATA_PORT", "STRATA_IDENTITY_PORT")


def _unusable(kind: str, tmp_path: Path) -> Path:
    if kind == "a file":
        path = tmp_path / "var"
        path.write_text("not a folder\n")
        return path
    parent = tmp_path / "parent"
    parent.write_text("a file where a folder should be\n")
    return parent / "var"


def _strata_refused(data_dir: Path) -> str:
    """The one line `strata` stops with on `data_dir`, having served nothing."""
    program = entry_point("strata")
    assert program, "strata is not installed"
    env = {
        "PATH": os.environ["PATH"],
        "STRATA_DATA_DIR": str(data_dir),
        "STRATA_PORT": str(free_port()),
    }
    done = run_cli(program, env, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "export STRATA_TOKEN" not in done.stdout  # nothing was started
    [line] = done.stderr.splitlines()
    return line


@pytest.mark.parametrize("kind", ["a file", "below a file"])
@pytest.mark.parametrize("command", SCRIPTS, ids=" ".join)
def test_an_unusable_data_dir_is_one_line_and_exit_1(
    command: tuple[str, ...], kind: str, tmp_path: Path
) -> None:
    program = entry_point(command[0])
    assert program, f"{command[0]} is not installed"
    data_dir = _unusable(kind, tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "STRATA_DATA_DIR": str(data_dir),
        **{variable: str(free_port()) for variable in PORTS},
    }
    done = run_cli(program, env, *command[1:], timeout=60)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{command[0]}: invalid settings: STRATA_DATA_DIR: "), line
    assert str(data_dir) in line
    assert "Traceback" not in done.stdout
    assert "export STRATA_TOKEN" not in done.stdout  # nothing was started


def test_a_ledger_its_simulators_cannot_open_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """`strata` runs the provider simulators in its process, their ledgers in the data folder:
    one that cannot be opened stops it as it stops `strata-payment-provider` (README), not a
    500 from the simulator at the first provider call, retried until the saga times out."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "simulators").write_text("a file where the ledgers' folder should be\n")

    line = _strata_refused(data_dir)

    assert line.startswith("strata: invalid settings: STRATA_DATA_DIR: the ledger "), line
    assert str(data_dir / "simulators" / "payment-provider.sqlite") in line


@pytest.mark.parametrize(
    ("file", "what"), [("orders.sqlite", "orders event store"), ("read.sqlite", "read database")]
)
@pytest.mark.parametrize("kind", ["not a database", "a folder"])
def test_a_store_file_that_cannot_be_opened_is_one_line_and_exit_1(
    file: str, what: str, kind: str, tmp_path: Path
) -> None:
    """A file of the data folder that SQLite cannot open (overwritten, or a folder where the
    file should be) stops `strata` in one line naming it, not a traceback in its lifespan."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    if kind == "a folder":
        (data_dir / file).mkdir()
    else:
        (data_dir / file).write_text("not a database, whatever it says\n" * 100)

    line = _strata_refused(data_dir)

    assert line.startswith(
        f"strata: invalid settings: STRATA_DATA_DIR: the {what} {data_dir / file} cannot be"
    ), line
