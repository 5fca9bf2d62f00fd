"""Reading compose.yaml in tests: the document as it is, or as generated for another registry,
and a service's command, environment and dependencies in one shape whichever form they take."""

import copy
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bff.settings import BffSettings
from contexts import generate
from contexts.registered import REGISTRY
from contexts.registry import Registry
from contexts.settings import Settings
from identity.settings import IdentitySettings
from runtime.settings import CommonSettings, settings_model
from tests.support.notes_context import NOTES

ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = str(Settings.model_config.get("env_prefix", ""))
COMPLETED = "service_completed_successfully"
ONE_SHOT_RESTARTS = {"no", "on-failure"}
"""A one-shot job may be retried when it fails, never run again once it has succeeded."""
REGISTRIES = {"registered": REGISTRY, "with notes": REGISTRY.with_(NOTES)}
"""The registered contexts, and one more declared in the test tree."""


SERVICE_SETTINGS: tuple[type[CommonSettings], ...] = (Settings, IdentitySettings, BffSettings)
"""The settings models of the processes the project runs: the write services and the others
(contexts' settings), identity's and the BFFs'."""


def settings_variables(*models: type[CommonSettings]) -> set[str]:
    return {
        ENV_PREFIX + name.upper()
        for model in models or SERVICE_SETTINGS
        for name in model.model_fields
    }


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every settings variable, the test context's URL included."""
    for variable in settings_variables(settings_model(REGISTRIES["with notes"].names)):
        monkeypatch.delenv(variable, raising=False)


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def compose_for(registry: Registry, path: str = "compose.yaml") -> dict[str, Any]:
    """A compose file (compose.yaml, or the override compose.cluster.yaml) as it is for the
    registered contexts, as generated for another registry."""
    text = (ROOT / path).read_text(encoding="utf-8")
    if registry is not REGISTRY:
        file = next(file for file in generate.FILES if file.path == path)
        text = generate.regenerate(file, text, registry)
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def with_override(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`docker compose -f base -f override` as far as our files go: a service's `environment`
    merged variable by variable, its other keys replaced; new services and volumes added."""
    merged = copy.deepcopy(dict(base))
    services = merged.setdefault("services", {})
    for name, service in (override.get("services") or {}).items():
        target = services.setdefault(name, {})
        before = dict(target)
        for key, value in service.items():
            target[key] = copy.deepcopy(value)
        if "environment" in service:
            target["environment"] = {**environment_of(before), **environment_of(service)}
    merged["volumes"] = {**(base.get("volumes") or {}), **(override.get("volumes") or {})}
    return merged


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:`, given as a mapping or as a list of KEY=VALUE; a value that is
    only `${NAME:-default}` reads as its default (compose with NAME unset)."""
    environment = service.get("environment") or {}
    if isinstance(environment, Mapping):
        pairs = [
            (str(key), "" if value is None else str(value)) for key, value in environment.items()
        ]
    else:
        pairs = [(name, value) for name, _, value in (str(e).partition("=") for e in environment)]
    return {name: _unset_default(value) for name, value in pairs}


def _unset_default(value: str) -> str:
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", value)
    return value if match is None else match.group(1)


def database_urls_of(service: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment_of(service).items() if k.endswith("_DATABASE_URL")}


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `depends_on:`, each with its condition (a list means `service_started`)."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, Mapping):
        return {
            str(name): str(dep.get("condition", "service_started"))
            for name, dep in depends_on.items()
        }
    return {str(name): "service_started" for name in depends_on}


def words_of(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command or []]


def first_word(command: Any) -> str | None:
    words = words_of(command)
    return words[0] if words else None


def context_of(service: Mapping[str, Any]) -> str | None:
    """The context a service runs (`--context NAME`), None for one serving them all."""
    words = words_of(service.get("command"))
    return words[words.index("--context") + 1] if "--context" in words else None
