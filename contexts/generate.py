"""`python -m contexts.generate [--check]`: write the context lists of compose.yaml and
compose.cluster.yaml (which cannot import Python) from the registry.

Each file holds regions between two marker lines::

    # BEGIN contexts: services (python -m contexts.generate)
    ...generated...
    # END contexts: services

Only the lines between the markers are written; the rest of the file is hand-written. With
`--check` nothing is written, and the exit code is 1 if a file is out of date
(tests/unit/test_generated_files.py runs the same check). The services' names and ports follow
`contexts.deployment`; scripts/stack asks that module at run time and is not generated.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from contexts.deployment import (
    ContextDeployment,
    Simulator,
    deployments,
    identity_environment,
    live_services,
    simulators,
    write_service_environment,
)
from contexts.live_services import IDENTITY, SHARED_SERVICES, SIDECAR_SCRIPT, LiveService
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.service_accounts import compose_secret
from runtime.generated_files import run_generator

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_POSTGRES = "postgresql://strata:strata@postgres:5432"
COMPOSE_DATA_DIR = "/var/lib/strata"
"""The image's data folder (STRATA_DATA_DIR), owned by its user: a volume mounted there is too."""
COMPOSE_LIVE_SETTINGS = f"{COMPOSE_DATA_DIR}/live"
"""Where the `live-settings` volume is mounted: each service's live settings file."""

Render = Callable[[Registry], list[str]]


@dataclass(frozen=True)
class GeneratedFile:
    path: str
    comment: str
    regions: Mapping[str, Render]


def _compose_event_store(d: ContextDeployment) -> str:
    return f"{d.context.database_url_variable}: {COMPOSE_POSTGRES}/{d.context.database_name}"


def _compose_event_stores(registry: Registry) -> list[str]:
    return [f"  {_compose_event_store(d)}" for d in deployments(registry)]


def _compose_urls(registry: Registry) -> dict[str, str]:
    """Each write service's and simulator's base URL on the compose network (its service name)."""
    ports = {s.service: s.port() for s in simulators(registry)}
    ports |= {d.write_service: d.write_port() for d in deployments(registry)}
    return {service: f"http://{service}:{port}" for service, port in ports.items()}


def _ledger_volume(s: Simulator) -> str:
    return f"{s.service}-ledger"


def _compose_simulator(s: Simulator) -> list[str]:
    """A simulator, its ledger on a volume of its own: a provider's books outlive its container
    (the image's /var/lib/strata, owned by its user, seeds the volume)."""
    port = s.port()
    health = f"urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=2)"
    return [
        f"  {s.service}:",
        "    restart: unless-stopped",
        "    build: .",
        f'    command: ["{s.script}", "--host", "0.0.0.0", "--port", "{port}"]',
        "    environment:",
        f"      {s.ledger_variable}: {COMPOSE_DATA_DIR}/{s.service}.sqlite",
        "    volumes:",
        f"      - {_ledger_volume(s)}:{COMPOSE_DATA_DIR}",
        "    ports:",
        f'      - "{port}:{port}"',
        "    healthcheck:",
        "      <<: *service-health",
        f'      test: ["CMD", "python", "-c", "import urllib.request; {health}"]',
        "",
    ]


def _compose_wiring(d: ContextDeployment, registry: Registry) -> list[str]:
    wiring = write_service_environment(d, _compose_urls(registry), registry, compose_secret)
    return [f"      {variable}: {url}" for variable, url in wiring.items()]


def _compose_identity(registry: Registry) -> list[str]:
    environment = identity_environment(_compose_urls(registry), compose_secret, registry)
    health = "urllib.request.urlopen('http://127.0.0.1:8200/healthz', timeout=2)"
    return [
        "  identity:",
        "    restart: unless-stopped",
        "    build: .",
        '    command: ["strata-identity", "serve"]',
        "    environment:",
        "      <<: [*nats, *behind-gateway]  # NATS: the users' profile changes (docs/identity.md)",
        "      STRATA_IDENTITY_DATABASE_URL: " + f"{COMPOSE_POSTGRES}/strata_identity",
        "      STRATA_IDENTITY_HOST: 0.0.0.0",
        *(f"      {name}: {json.dumps(value)}" for name, value in environment.items()),
        *_compose_live_settings(IDENTITY),
        "    ports:",
        '      - "8200:8200"',
        "    depends_on:",
        "      provision:",
        "        condition: service_completed_successfully",
        "    healthcheck:",
        "      <<: *service-health",
        f'      test: ["CMD", "python", "-c", "import urllib.request; {health}"]',
        "",
    ]


def _compose_callees(d: ContextDeployment, registry: Registry) -> list[str]:
    """The simulators a write service waits for."""
    return [
        line
        for s in simulators(registry)
        if s.caller == d.name
        for line in (f"      {s.service}:", "        condition: service_healthy")
    ]


def _compose_write_service(d: ContextDeployment, registry: Registry) -> list[str]:
    port = d.write_port()
    return [
        f"  {d.write_service}:",
        "    restart: unless-stopped",
        "    build: .",
        f'    command: ["strata-write-api", "--context", "{d.name}"]',
        "    environment:",
        f"      {_compose_event_store(d)}",
        "      <<: [*nats, *auth]",
        "      STRATA_HOST: 0.0.0.0",
        f'      STRATA_PORT: "{port}"',
        *_compose_wiring(d, registry),
        *_compose_live_settings(d.write),
        "    ports:",
        f'      - "{port}:{port}"',
        "    depends_on:",
        "      provision:",
        "        condition: service_completed_successfully",
        "      nats:",
        "        condition: service_healthy",
        *_compose_callees(d, registry),
        "    healthcheck: *write-health",
        "",
    ]


def _compose_sidecar(
    beside: str, service: str, command: str, lines: list[str], health: str
) -> list[str]:
    """A process beside the service `beside`, in its network namespace: `lines` are its
    environment (and volumes), after the command."""
    return [
        f"  {service}:",
        "    restart: unless-stopped",
        "    build: .",
        f"    command: {command}",
        f'    network_mode: "service:{beside}"',
        *lines,
        "    depends_on:",
        "      provision:",
        "        condition: service_completed_successfully",
        f"      {beside}:",
        "        condition: service_healthy",
        "      nats:",
        "        condition: service_healthy",
        f"    healthcheck: *{health}",
        "",
    ]


def _compose_live_settings(service: LiveService) -> list[str]:
    """A service's live settings file (environment) on the shared volume (volumes)."""
    return [
        f"      STRATA_LIVE_SETTINGS_FILE: {service.live_settings_file(COMPOSE_LIVE_SETTINGS)}",
        "    volumes:",
        f"      - live-settings:{COMPOSE_LIVE_SETTINGS}",
    ]


def _compose_relay(d: ContextDeployment) -> list[str]:
    environment = [
        "    environment:",
        f"      {_compose_event_store(d)}",
        "      <<: *nats",
        f'      STRATA_RELAY_PORT: "{d.relay_port()}"',
        *_compose_live_settings(d.relay),
    ]
    command = f'["strata-relay", "--context", "{d.name}"]'
    return _compose_sidecar(d.write_service, d.relay_service, command, environment, "relay-health")


def _compose_config_sidecar(service: LiveService, beside: str | None = None) -> list[str]:
    """The config sidecar of `service`, in the network namespace of `beside` (the service's
    own unless it shares another's: the relays share their write service's)."""
    lines = [
        "    environment:",
        "      <<: *nats",
        f'      STRATA_CONFIG_SIDECAR_PORT: "{service.config_sidecar_port()}"',
        *_compose_live_settings(service),
    ]
    command = f'["{SIDECAR_SCRIPT}", "--service", "{service.name}"]'
    return _compose_sidecar(
        beside or service.name, service.config_sidecar, command, lines, "config-sidecar-health"
    )


def _compose_services(registry: Registry) -> list[str]:
    providers = [line for s in simulators(registry) for line in _compose_simulator(s)]
    return (
        providers
        + _compose_identity(registry)
        + [
            line
            for d in deployments(registry)
            for line in [
                *_compose_write_service(d, registry),
                *_compose_config_sidecar(d.write),
                *_compose_relay(d),
                *_compose_config_sidecar(d.relay, beside=d.write_service),
            ]
        ]
    )


def _compose_volumes(registry: Registry) -> list[str]:
    return [f"  {_ledger_volume(s)}:" for s in simulators(registry)]


def _compose_shared_config_sidecars(_registry: Registry) -> list[str]:
    """The config sidecars of the services that serve every context (written by hand above
    the region, each with the live settings file of `_compose_live_settings`)."""
    return [line for s in (IDENTITY, *SHARED_SERVICES) for line in _compose_config_sidecar(s)]


def _compose_cluster_clients(registry: Registry) -> list[str]:
    """compose.cluster.yaml: each per-context service that uses NATS and every config sidecar
    (the configuration bucket), given the cluster."""
    per_context = [s for d in deployments(registry) for s in (d.write_service, d.relay_service)]
    sidecars = [service.config_sidecar for service in live_services(registry)]
    return [
        line
        for service in (*per_context, *sidecars)
        for line in (f"  {service}:", "    environment: *nats-cluster")
    ]


FILES = (
    GeneratedFile(
        "compose.yaml",
        "#",
        {
            "event-stores": _compose_event_stores,
            "services": _compose_services,
            "config-sidecars": _compose_shared_config_sidecars,
            "volumes": _compose_volumes,
        },
    ),
    GeneratedFile("compose.cluster.yaml", "#", {"services": _compose_cluster_clients}),
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
    run_generator("contexts.generate", stale_files, write_files, argv)


if __name__ == "__main__":
    main()
