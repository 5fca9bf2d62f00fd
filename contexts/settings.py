"""The settings model of the registered contexts: the runtime's common fields plus one event-store
URL per context (`STRATA_<CONTEXT>_DATABASE_URL`)."""

from typing import TYPE_CHECKING

from contexts.registered import REGISTRY
from runtime import settings as runtime_settings
from runtime.settings import CommonSettings, Mode, settings_model

CONTEXTS = REGISTRY.names

if TYPE_CHECKING:
    Settings = CommonSettings
else:
    Settings = settings_model(REGISTRY.names)


def load_settings(prog: str, contexts: tuple[str, ...] | None = None) -> CommonSettings:
    """The settings of the registered contexts (or of those named: a process serving some of
    them needs only their event stores) from the environment, or exit with one line."""
    model = Settings if contexts is None else settings_model(contexts)
    return runtime_settings.load_settings(prog, model)


__all__ = ["CONTEXTS", "Mode", "Settings", "load_settings"]
