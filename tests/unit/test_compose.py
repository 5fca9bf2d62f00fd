"""compose.yaml and the Dockerfile run only what the project declares.

Every service built from the project runs a console script of pyproject.toml (or `python -m` one
of its modules) and sets only environment variables that the settings model reads; every
long-running service has a healthcheck and is restarted whenever it exits (issue 7, item 8:
deployments supervise their processes), and a one-shot job is not restarted after it succeeds.
The per-context services are checked in tests/unit/test_compose_contexts.py.
"""

import importlib.util
import ipaddress
import json
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from contexts.registry import Registry
from runtime.settings import settings_model
from tests.support.compose import (
    COMPLETED,
    ENV_PREFIX,
    ONE_SHOT_RESTARTS,
    REGISTRIES,
    ROOT,
    SERVICE_SETTINGS,
    compose_for,
    dependencies,
    environment_of,
    load_compose,
    settings_variables,
    words_of,
)

RESTARTING = {"always", "unless-stopped", "on-failure"}
"""Restart policies that bring back a crashed process without limit (not `no`, `on-failure:N`)."""


def console_scripts() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return set(tomllib.load(file)["project"]["scripts"])


def project_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}


def command_problem(words: list[str], scripts: set[str]) -> str | None:
    if not words:
        return "builds the project but sets no command"
    if words[:2] == ["python", "-m"] and len(words) > 2:
        module = words[2]
        if (
            module.split(".")[0] not in project_packages()
            or importlib.util.find_spec(module) is None
        ):
            return f"runs python -m {module}, which is not a module of the project"
        return None
    if words[0] not in scripts:
        return f"runs {words[0]!r}, which is not a declared console script"
    return None


def one_shots(services: Mapping[str, Any]) -> set[str]:
    """The services others wait for to complete: jobs, not long-running processes."""
    return {
        name
        for service in services.values()
        for name, condition in dependencies(service).items()
        if condition == COMPLETED
    }


def lifecycle_problems(name: str, service: Mapping[str, Any], one_shot: bool) -> list[str]:
    if one_shot:
        if service.get("restart", "no") not in ONE_SHOT_RESTARTS:
            return [f"service {name} runs once but is restarted after it succeeds"]
        return []
    problems = []
    healthcheck = service.get("healthcheck") or {}
    if not healthcheck.get("test") or healthcheck.get("disable"):
        problems.append(f"service {name} has no healthcheck")
    if service.get("restart") not in RESTARTING:
        problems.append(f"service {name} is not restarted when it exits")
    return problems


def compose_problems(
    compose: Mapping[str, Any], scripts: set[str], variables: set[str]
) -> list[str]:
    """What is wrong with a compose document, one sentence per problem (empty when nothing is)."""
    services = compose.get("services") or {}
    if not services:
        return ["there are no services"]
    jobs = one_shots(services)
    problems = []
    for name, service in services.items():
        problems += lifecycle_problems(name, service, name in jobs)
        if "build" not in service:
            continue
        problem = command_problem(words_of(service.get("command")), scripts)
        if problem:
            problems.append(f"service {name} {problem}")
        for variable in environment_of(service):
            if variable.startswith(ENV_PREFIX) and variable not in variables:
                problems.append(f"service {name} sets {variable}, which is not a setting")
    if not any("build" in service for service in services.values()):
        problems.append("no service builds the project")
    return problems


def dockerfile_instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        instruction, _, arguments = logical.partition(" ")
        yield instruction.upper(), arguments.strip()
        logical = ""


def dockerfile_cmd(text: str) -> list[str]:
    """The effective CMD: the last one, in exec (JSON) or shell form."""
    commands = [arguments for name, arguments in dockerfile_instructions(text) if name == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    cmd = commands[-1]
    if cmd.startswith("["):
        words = json.loads(cmd)
        assert isinstance(words, list)
        return [str(word) for word in words]
    return shlex.split(cmd)


def dockerfile_environment(text: str) -> set[str]:
    """The names of the variables the Dockerfile's ENV instructions set."""
    names = set()
    for name, arguments in dockerfile_instructions(text):
        if name != "ENV":
            continue
        words = shlex.split(arguments)
        if words and "=" not in words[0]:  # legacy form: ENV NAME value
            names.add(words[0])
        else:
            names.update(word.split("=", 1)[0] for word in words)
    return names


def test_compose_runs_declared_scripts_with_known_settings_healthchecks_and_restarts() -> None:
    assert compose_problems(load_compose(), console_scripts(), settings_variables()) == []


@pytest.mark.parametrize("registry", REGISTRIES.values(), ids=list(REGISTRIES))
def test_the_generated_compose_is_sound_for_another_context(registry: Registry) -> None:
    variables = settings_variables(settings_model(registry.names), *SERVICE_SETTINGS[1:])
    assert compose_problems(compose_for(registry), console_scripts(), variables) == []


def test_dockerfile_runs_a_declared_script_with_known_settings() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")

    assert dockerfile_cmd(text)[0] in console_scripts()
    strata_variables = {name for name in dockerfile_environment(text) if name.startswith("STRATA_")}
    assert strata_variables <= settings_variables()
    assert any(name == "HEALTHCHECK" for name, _ in dockerfile_instructions(text))


def test_the_image_copies_every_package_the_project_installs() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    packages = project_packages()
    copied = {
        arguments.split()[0].rstrip("/")
        for name, arguments in dockerfile_instructions(text)
        if name == "COPY"
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


def test_a_broken_compose_document_is_reported() -> None:
    broken = yaml.safe_load(
        """
        services:
          write-api:
            build: .
            restart: "on-failure:3"
            command: uvicorn write_api.app:app
            environment:
              - STRATA_USERS_DATABASE_URL=postgresql://postgres/users
              - STRATA_NO_SUCH_SETTING=1
            healthcheck:
              test: ["CMD", "true"]
            depends_on:
              setup:
                condition: service_completed_successfully
          read-api:
            build: .
            restart: always
            healthcheck:
              test: ["CMD", "true"]
          setup:
            build: .
            restart: unless-stopped
            command: ["python", "-m", "no_such_package.provision"]
          redis:
            image: redis:7
            restart: unless-stopped
        """
    )

    problems = compose_problems(broken, console_scripts(), settings_variables())

    assert sorted(problems) == [
        "service read-api builds the project but sets no command",
        "service redis has no healthcheck",
        "service setup runs once but is restarted after it succeeds",
        "service setup runs python -m no_such_package.provision, which is not a module of the"
        " project",
        "service write-api is not restarted when it exits",
        "service write-api runs 'uvicorn', which is not a declared console script",
        "service write-api sets STRATA_NO_SUCH_SETTING, which is not a setting",
    ]


def test_a_broken_dockerfile_cmd_is_found() -> None:
    text = 'FROM python:3.11-slim\nHEALTHCHECK CMD ["true"]\nCMD ["python", \\\n  "-m", "x"]\n'

    assert dockerfile_cmd(text) == ["python", "-m", "x"]
    assert dockerfile_cmd(text)[0] not in console_scripts()


def gateway_upstreams() -> set[str]:
    """The compose services the compose gateway's generated bootstrap sends requests to."""
    bootstrap = yaml.safe_load((ROOT / "deploy/envoy/envoy.compose.yaml").read_text("utf-8"))
    return {
        endpoint["endpoint"]["address"]["socket_address"]["address"]
        for cluster in bootstrap["static_resources"]["clusters"]
        for locality in cluster.get("load_assignment", {}).get("endpoints", [])
        for endpoint in locality["lb_endpoints"]
    }


def test_services_behind_the_gateway_believe_forwarded_addresses_from_it_alone() -> None:
    compose = load_compose()
    services = compose["services"]
    gateway_address = services["gateway"]["networks"]["default"]["ipv4_address"]
    [subnet] = compose["networks"]["default"]["ipam"]["config"]
    upstreams = gateway_upstreams() & set(services)

    assert ipaddress.ip_address(gateway_address) in ipaddress.ip_network(subnet["subnet"])
    assert {"identity", "read-api", "bff-web", "bff-mobile", "write-users"} <= upstreams
    believed = {
        name: environment_of(services[name]).get("FORWARDED_ALLOW_IPS") for name in upstreams
    }
    assert believed == dict.fromkeys(upstreams, gateway_address)
