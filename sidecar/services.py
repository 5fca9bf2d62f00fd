"""The services a config sidecar may stand beside (`contexts.deployment.live_services`), the
settings model each one validates against, and the live settings each one takes.

Every process takes `log_level` and `feature_flags`. The breaker thresholds go to the services
with circuit breakers (the write services' provider and participant calls, the BFFs' read API
sections), the rate limits to those that count them (every service clients reach). A live
setting a service has no use for is refused for it (`strata-config` exit 2), as a setting read
at start only is.
"""

from dataclasses import dataclass

from bff.settings import BffSettings
from contexts.deployment import deployments, live_services
from contexts.live_services import BFF_MOBILE, BFF_WEB, IDENTITY, PROJECTOR, READ_API
from contexts.settings import Settings
from identity.settings import IdentitySettings
from runtime.rate_limits import RATE_LIMIT_SETTINGS
from runtime.resilience import BREAKER_SETTINGS
from runtime.settings import CommonSettings, settings_model

EVERY_PROCESS = ("log_level", "feature_flags")
BREAKERS = tuple(sorted(BREAKER_SETTINGS))
RATE_LIMITS = tuple(sorted(RATE_LIMIT_SETTINGS))


@dataclass(frozen=True)
class ServiceSettings:
    """A service's settings model, and the live fields of it the service takes."""

    model: type[CommonSettings]
    live: tuple[str, ...]


class UnknownService(KeyError):
    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service

    def __str__(self) -> str:
        return f"no service {self.service!r}; services: {', '.join(services())}"


def _catalogue() -> dict[str, ServiceSettings]:
    catalogue = {
        IDENTITY.name: ServiceSettings(IdentitySettings, EVERY_PROCESS + RATE_LIMITS),
        PROJECTOR.name: ServiceSettings(Settings, EVERY_PROCESS),
        READ_API.name: ServiceSettings(Settings, EVERY_PROCESS + RATE_LIMITS),
        BFF_WEB.name: ServiceSettings(BffSettings, EVERY_PROCESS + BREAKERS + RATE_LIMITS),
        BFF_MOBILE.name: ServiceSettings(BffSettings, EVERY_PROCESS + BREAKERS + RATE_LIMITS),
    }
    for d in deployments():
        model = settings_model((d.name,))
        catalogue[d.write_service] = ServiceSettings(model, EVERY_PROCESS + BREAKERS + RATE_LIMITS)
        catalogue[d.relay_service] = ServiceSettings(model, EVERY_PROCESS)
    return catalogue


def services() -> tuple[str, ...]:
    """In the order of the deployment."""
    return tuple(service.name for service in live_services())


def service_settings(service: str) -> ServiceSettings:
    """The settings of the service; raises `UnknownService`."""
    try:
        return _catalogue()[service]
    except KeyError:
        raise UnknownService(service) from None
