"""The dependency rule and the naming rule of the read side (DESIGN.md, "Layout and the
dependency rule"): `read_api` and `projections` meet only in `readmodels`, `domain` knows
neither, and no two modules share a name while meaning different things."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SAME_ROLE_NAMES = {
    "__init__": "a package's marker and docstring",
    "main": "a process's entry point (`strata-<process>` console script)",
    "app": "the FastAPI application factory of an HTTP service",
    "metrics": "a process's own Prometheus metrics",
}
"""Base names allowed in more than one package: each names the same role in every package."""

READ_SIDE = ("projections", "readmodels", "read_api")
"""Packages whose production modules must have distinct base names (outside SAME_ROLE_NAMES),
and which must not reuse a name of `domain` (`domain/values.py` keeps its name). Names repeated
inside `domain` (each context's `service.py`) are the contexts' own layout."""


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(imported_packages(path) & forbidden))}"
        for path in modules(package)
        if imported_packages(path) & forbidden
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("read_api", {"projections"}),
        ("projections", {"read_api"}),
        ("readmodels", {"projections", "read_api"}),
        ("domain", {"projections", "read_api", "readmodels"}),
    ],
)
def test_packages_import_only_across_the_contract(package: str, forbidden: set[str]) -> None:
    assert modules(package), f"no modules found under {package}/"
    assert offenders(package, forbidden) == []


def test_the_import_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check above would pass vacuously if the walk missed an import form."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import projections.engine\n"
        "from projections import models\n"
        "from . import sibling\n"
        "def late():\n"
        "    from read_api.stores import base\n"
    )
    assert imported_packages(module) == {"projections", "read_api"}


def module_places(packages: tuple[str, ...]) -> dict[str, list[str]]:
    places: dict[str, list[str]] = defaultdict(list)
    for package in packages:
        for path in modules(package):
            places[path.stem].append(str(path.relative_to(ROOT)))
    return places


def test_no_two_modules_share_a_name_across_the_read_side_packages() -> None:
    places = module_places(READ_SIDE)
    domain_names = set(module_places(("domain",)))
    shared = {
        name: paths
        for name, paths in places.items()
        if name not in SAME_ROLE_NAMES and (len(paths) > 1 or name in domain_names)
    }
    assert shared == {}
