"""The README stays true to the code: its settings table and its Quickstart commands."""

import os
import re
from pathlib import Path

from runtime.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table_and_nothing_else_is() -> None:
    documented = set(re.findall(r"^\| `(STRATA_[A-Z_<>]+)` \|", README, flags=re.MULTILINE))
    fields = {f"STRATA_{name.upper()}" for name in CommonSettings.model_fields}
    # One row for the per-context rule: each registered context adds its event store's URL.
    assert documented == fields | {"STRATA_<CONTEXT>_DATABASE_URL"}


def test_the_quickstart_has_two_commands_and_both_scripts_exist() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = quickstart.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./scripts/start", "./scripts/test"]
    for command in commands:
        script = ROOT / command
        assert script.is_file()
        assert os.access(script, os.X_OK)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci
