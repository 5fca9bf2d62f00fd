"""compose.yaml, which cannot import Python, lists the registered contexts as the registry does."""

from pathlib import Path

import pytest

from contexts import generate
from contexts.registered import REGISTRY
from contexts.registry import Registry
from tests.support.notes_context import NOTES


def test_the_generated_files_are_up_to_date() -> None:
    assert generate.stale_files() == [], "run: python -m contexts.generate"


def test_a_registered_context_makes_the_files_stale_until_they_are_regenerated(
    tmp_path: Path,
) -> None:
    for file in generate.FILES:
        (tmp_path / file.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file.path).write_text((generate.ROOT / file.path).read_text())
    with_notes = REGISTRY.with_(NOTES)

    assert generate.stale_files(tmp_path, with_notes) == [f.path for f in generate.FILES]
    assert generate.write_files(tmp_path, with_notes) == [f.path for f in generate.FILES]

    assert generate.stale_files(tmp_path, with_notes) == []
    compose = (tmp_path / "compose.yaml").read_text()
    assert "  write-notes:\n" in compose
    assert 'command: ["strata-relay", "--context", "notes"]' in compose
    assert (
        "STRATA_NOTES_DATABASE_URL: postgresql://strata:strata@postgres:5432/strata_notes"
        in compose
    )


def test_a_file_without_its_markers_is_refused() -> None:
    compose = generate.FILES[0]
    with pytest.raises(generate.MissingRegion, match=r"compose\.yaml has no region 'event-stores'"):
        generate.regenerate(compose, "services: {}\n", Registry())
