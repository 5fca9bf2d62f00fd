"""The services a config sidecar may stand beside, and the settings model each one validates
against: each context's write service (`write-<context>`, contexts/deployment.py)."""

from contexts.deployment import deployments
from runtime.settings import CommonSettings, settings_model


class UnknownService(KeyError):
    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service

    def __str__(self) -> str:
        return f"no service {self.service!r}; services: {', '.join(services())}"


def _models() -> dict[str, type[CommonSettings]]:
    return {d.write_service: settings_model((d.name,)) for d in deployments()}


def services() -> tuple[str, ...]:
    return tuple(_models())


def service_settings(service: str) -> type[CommonSettings]:
    """The settings model of the service; raises `UnknownService`."""
    try:
        return _models()[service]
    except KeyError:
        raise UnknownService(service) from None
