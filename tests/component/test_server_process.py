"""Every long-running process keeps the objects alive at its start out of full garbage
collections (`runtime.server_process`): each check runs in a process of its own, since a
frozen object stays frozen for the rest of the process."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FACTORIES = (
    "write_api.app",
    "read_api.app",
    "identity.app",
    "bff.web.app",
    "bff.mobile.app",
    "embedded.app",
)


def run_python(code: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "STRATA_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_what_is_alive_is_frozen_and_what_is_garbage_is_collected_first(tmp_path: Path) -> None:
    last_line = run_python(
        """
        import gc, weakref

        from runtime.server_process import configure_server_process

        class Node:
            pass

        cycle = Node()
        cycle.itself = cycle  # garbage only a collection finds
        garbage = weakref.ref(cycle)
        del cycle
        kept = Node()
        gc.disable()  # no collection but the one under test

        configure_server_process("warning")

        collected = any(found is kept for found in gc.get_objects())  # frozen ones are not
        print(garbage() is None, gc.is_tracked(kept), collected)
        """,
        tmp_path,
    )
    assert last_line == "True True False"


@pytest.mark.parametrize("module", FACTORIES)
def test_an_app_built_for_its_server_process_freezes_what_its_imports_left(
    module: str, tmp_path: Path
) -> None:
    """The factory as uvicorn calls it, without settings (those of the server process)."""
    last_line = run_python(
        f"""
        import gc

        from {module} import create_app

        gc.disable()
        create_app()
        print(gc.get_freeze_count() > 100_000)
        """,
        tmp_path,
    )
    assert last_line == "True"


def test_an_app_built_with_its_settings_freezes_nothing(tmp_path: Path) -> None:
    """As the tests build theirs: their process goes on after the app."""
    last_line = run_python(
        f"""
        import gc
        from pathlib import Path

        from contexts.settings import Settings
        from write_api.app import create_app

        create_app(Settings(data_dir=Path({str(tmp_path / "data")!r})))
        print(gc.get_freeze_count())
        """,
        tmp_path,
    )
    assert last_line == "0"
