"""`python -m contexts.generate [--check]`: write the context lists of the files that cannot
import Python (compose.yaml, scripts/stack, the deploy SQL) from the registry.

Each such file holds regions between two marker lines, in its own comment syntax::

    # BEGIN contexts: relays (python -m contexts.generate)
    ...generated...
    # END contexts: relays

Only the lines between the markers are written; the rest of the file is hand-written. With
`--check` nothing is written, and the exit code is 1 if a file is out of date
(tests/unit/test_generated_files.py runs the same check).

Relay ports: the relay of the n-th registered context (from 0) serves /healthz, /readyz and
/metrics on STRATA_RELAY_PORT + 10 n (8001, 8011, ...), so relays sharing the write API's
network namespace do not collide.
"""

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from contexts.registered import REGISTRY
from contexts.registry import BoundedContext, Registry

ROOT = Path(__file__).resolve().parents[1]
RELAY_PORT = 8001
RELAY_PORT_STEP = 10
COMPOSE_POSTGRES = "postgresql://strata:strata@postgres:5432"

Render = Callable[[Registry], list[str]]


@dataclass(frozen=True)
class GeneratedFile:
    path: str
    comment: str
    regions: Mapping[str, Render]


def relay_port_offset(index: int) -> int:
    return RELAY_PORT_STEP * index


def _compose_event_stores(registry: Registry) -> list[str]:
    return [f"  {c.database_url_variable}: {COMPOSE_POSTGRES}/{c.database_name}" for c in registry]


def _compose_relay(index: int, context: BoundedContext) -> list[str]:
    return [
        f"  relay-{context.name}:",
        "    restart: unless-stopped",
        "    build: .",
        f'    command: ["strata-relay", "--context", "{context.name}"]',
        '    network_mode: "service:write-api"',
        "    environment:",
        "      <<: *event-stores",
        f'      STRATA_RELAY_PORT: "{RELAY_PORT + relay_port_offset(index)}"',
        "    depends_on:",
        "      write-api:",
        "        condition: service_healthy",
        "      nats:",
        "        condition: service_healthy",
        "    healthcheck: *relay-health",
        "",
    ]


def _compose_relays(registry: Registry) -> list[str]:
    return [line for i, c in enumerate(registry) for line in _compose_relay(i, c)]


def _stack_event_stores(registry: Registry) -> list[str]:
    return [
        f"export {v}=${{{v}:-$pg/{c.database_name}}}"
        for c in registry
        for v in [c.database_url_variable]
    ]


def _stack_relays(registry: Registry) -> list[str]:
    return [
        f'    "relay-{c.name}=env STRATA_RELAY_PORT=$((${{STRATA_RELAY_PORT:-{RELAY_PORT}}}'
        f' + {relay_port_offset(i)})) .venv/bin/strata-relay --context {c.name}"'
        for i, c in enumerate(registry)
    ]


def _sql_databases(registry: Registry) -> list[str]:
    return [f"CREATE DATABASE {c.database_name};" for c in registry]


FILES = (
    GeneratedFile(
        "compose.yaml",
        "#",
        {"event-stores": _compose_event_stores, "relays": _compose_relays},
    ),
    GeneratedFile(
        "scripts/stack", "#", {"event-stores": _stack_event_stores, "relays": _stack_relays}
    ),
    GeneratedFile("deploy/postgres/init-databases.sql", "--", {"databases": _sql_databases}),
)


class MissingRegion(Exception):
    pass


def regenerate(file: GeneratedFile, text: str, registry: Registry) -> str:
    """The file's text with each of its regions rendered anew from the registry."""
    for region, render in file.regions.items():
        marker = re.escape(f"{file.comment} BEGIN contexts: {region}")
        end = re.escape(f"{file.comment} END contexts: {region}")
        pattern = re.compile(rf"(^[ \t]*{marker}[^\n]*\n)(.*?)(^[ \t]*{end}[^\n]*$)", re.M | re.S)
        found = pattern.search(text)
        if found is None:
            raise MissingRegion(f"{file.path} has no region {region!r} between markers")
        body = "".join(line + "\n" for line in render(registry))
        text = text[: found.end(1)] + body + text[found.start(3) :]
    return text


def stale_files(root: Path = ROOT, registry: Registry = REGISTRY) -> list[str]:
    """The generated files whose context lists differ from the registry's."""
    stale = []
    for file in FILES:
        text = (root / file.path).read_text(encoding="utf-8")
        if regenerate(file, text, registry) != text:
            stale.append(file.path)
    return stale


def write_files(root: Path = ROOT, registry: Registry = REGISTRY) -> list[str]:
    written = []
    for file in FILES:
        path = root / file.path
        text = path.read_text(encoding="utf-8")
        new = regenerate(file, text, registry)
        if new != text:
            path.write_text(new, encoding="utf-8")
            written.append(file.path)
    return written


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments not in ([], ["--check"]):
        sys.exit("usage: python -m contexts.generate [--check]")
    if arguments:
        stale = stale_files()
        if stale:
            sys.exit(f"out of date (run python -m contexts.generate): {', '.join(stale)}")
        print("up to date")
        return
    written = write_files()
    print("written: " + (", ".join(written) if written else "nothing (all up to date)"))


if __name__ == "__main__":
    main()
