"""`Settings` of the registered contexts from values given as their environment variables."""

from collections.abc import Mapping
from typing import Any

from contexts.settings import Settings
from runtime.settings import CommonSettings


def settings_of(variables: Mapping[str, str]) -> CommonSettings:
    """The settings these `STRATA_*` variables give (the model parses their text as it parses the
    environment; other variables are left out). Keyword arguments of `Any` type: most event-store
    URLs are fields the model makes from the registry at run time, unknown to a type checker."""
    fields: dict[str, Any] = {
        name.removeprefix("STRATA_").lower(): value
        for name, value in variables.items()
        if name.startswith("STRATA_")
    }
    return Settings(**fields)
