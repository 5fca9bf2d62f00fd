"""compose.yaml and the Dockerfile run only what the project declares.

Every service built from the project runs a console script of pyproject.toml and sets only
environment variables that the settings model reads; every service has a healthcheck and is
restarted whenever it exits (issue 7, item 8: deployments supervise their processes).
"""

import json
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from contexts.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
RESTARTING = {"always", "unless-stopped", "on-failure"}
"""Restart policies that bring back a crashed process without limit (not `no`, `on-failure:N`)."""


def console_scripts() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return set(tomllib.load(file)["project"]["scripts"])


def settings_variables() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:`, given as a mapping or as a list of KEY=VALUE."""
    environment = service.get("environment") or {}
    if isinstance(environment, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in environment.items()}
    variables = {}
    for entry in environment:
        name, _, value = str(entry).partition("=")
        variables[name] = value
    return variables


def first_word(command: Any) -> str | None:
    words = shlex.split(command) if isinstance(command, str) else list(command or [])
    return str(words[0]) if words else None


def compose_problems(
    compose: Mapping[str, Any], scripts: set[str], variables: set[str]
) -> list[str]:
    """What is wrong with a compose document, one sentence per problem (empty when nothing is)."""
    services = compose.get("services") or {}
    if not services:
        return ["there are no services"]
    problems = []
    for name, service in services.items():
        healthcheck = service.get("healthcheck") or {}
        if not healthcheck.get("test") or healthcheck.get("disable"):
            problems.append(f"service {name} has no healthcheck")
        if service.get("restart") not in RESTARTING:
            problems.append(f"service {name} is not restarted when it exits")
        if "build" not in service:
            continue
        word = first_word(service.get("command"))
        if word is None:
            problems.append(f"service {name} builds the project but sets no command")
        elif word not in scripts:
            problems.append(f"service {name} runs {word!r}, which is not a declared console script")
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


def test_compose_runs_the_write_api_in_stack_mode() -> None:
    service = load_compose()["services"]["write-api"]
    environment = environment_of(service)

    assert first_word(service["command"]) == "strata-write-api"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "@postgres:" in environment["STRATA_USERS_DATABASE_URL"]
    assert "@postgres:" in environment["STRATA_ORDERS_DATABASE_URL"]
    # Database per service.
    assert environment["STRATA_USERS_DATABASE_URL"] != environment["STRATA_ORDERS_DATABASE_URL"]


def test_compose_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in load_compose()["services"].values():
        if "build" not in service:
            continue
        for variable in settings_variables():
            monkeypatch.delenv(variable, raising=False)
        for variable, value in environment_of(service).items():
            monkeypatch.setenv(variable, value)

        settings = Settings()

        command = first_word(service["command"])
        if command in {"strata-write-api", "strata-relay", "strata-projector"}:
            assert settings.mode == "stack", command  # the event stores are PostgreSQL
        if command in {"strata-projector", "strata-read-api"}:
            assert settings.read_database_url and settings.redis_url, command


def test_postgres_creates_the_databases_the_services_use() -> None:
    compose = load_compose()
    init_script = (ROOT / "deploy/postgres/init-databases.sql").read_text(encoding="utf-8")
    mounts = compose["services"]["postgres"]["volumes"]
    assert any(
        str(mount).startswith("./deploy/postgres/init-databases.sql:/docker-entrypoint-initdb.d/")
        for mount in mounts
    )
    for service in compose["services"].values():
        for variable, url in environment_of(service).items():
            if variable.endswith("_DATABASE_URL"):
                database = url.rsplit("/", 1)[1]
                assert f"CREATE DATABASE {database};" in init_script


def test_dockerfile_runs_a_declared_script_with_known_settings() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")

    assert dockerfile_cmd(text)[0] in console_scripts()
    strata_variables = {name for name in dockerfile_environment(text) if name.startswith("STRATA_")}
    assert strata_variables <= settings_variables()
    assert any(name == "HEALTHCHECK" for name, _ in dockerfile_instructions(text))


def test_the_image_copies_every_package_the_project_installs() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
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
          read-api:
            build: .
            restart: always
            healthcheck:
              test: ["CMD", "true"]
          redis:
            image: redis:7
            restart: unless-stopped
        """
    )

    problems = compose_problems(broken, console_scripts(), settings_variables())

    assert sorted(problems) == [
        "service read-api builds the project but sets no command",
        "service redis has no healthcheck",
        "service write-api is not restarted when it exits",
        "service write-api runs 'uvicorn', which is not a declared console script",
        "service write-api sets STRATA_NO_SUCH_SETTING, which is not a setting",
    ]


def test_a_broken_dockerfile_cmd_is_found() -> None:
    text = 'FROM python:3.11-slim\nHEALTHCHECK CMD ["true"]\nCMD ["python", \\\n  "-m", "x"]\n'

    assert dockerfile_cmd(text) == ["python", "-m", "x"]
    assert dockerfile_cmd(text)[0] not in console_scripts()
