"""The settings model of the registered contexts: the runtime's common fields plus one event-store
URL per context (`STRATA_<CONTEXT>_DATABASE_URL`)."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contexts.registered import REGISTRY
from contexts.registry import Registry
from runtime import settings as runtime_settings
from runtime.settings import CommonSettings, Mode, database_url_field, settings_model

CONTEXTS = REGISTRY.names

if TYPE_CHECKING:
    Settings = CommonSettings
else:
    Settings = settings_model(REGISTRY.names)


def database_url_fields(urls: Mapping[str, str]) -> dict[str, Any]:
    """`Settings` keyword arguments naming these event-store URLs, by context. The model makes
    those fields from the registry at run time and a type checker sees only `CommonSettings`,
    so the values are typed `Any`."""
    return {database_url_field(name): url for name, url in urls.items()}


def database_url_variables(contexts: Registry = REGISTRY) -> str:
    """The event-store URL variables of these contexts, as a sentence names them: the stack
    mode needs every one (`Settings` refuses some without the others)."""
    *others, last = (context.database_url_variable for context in contexts)
    return f"{', '.join(others)} and {last}" if others else last


def load_settings(prog: str, contexts: tuple[str, ...] | None = None) -> CommonSettings:
    """The settings of the registered contexts (or of those named: a process serving some of
    them needs only their event stores) from the environment, or exit with one line."""
    model = Settings if contexts is None else settings_model(contexts)
    return runtime_settings.load_settings(prog, model)


__all__ = [
    "CONTEXTS",
    "Mode",
    "Settings",
    "database_url_fields",
    "database_url_variables",
    "load_settings",
]
