"""The long-running services that follow live settings, each with a config sidecar beside it
(docs/config.md): the service's name, where its sidecar listens, and the file between the two.

A config sidecar is `config-<service>` (`config-write-users`, `config-projector`, ...) and
listens on its service's default port + 5: 8005 beside write-users (8000), 8006 beside
relay-users (8001), 8007 beside the projector (8002), 8008 beside the read API (8003), 8205
beside identity, 8215 and 8225 beside the BFFs. `STRATA_CONFIG_SIDECAR_PORT` (8005, the first)
moves them all by as much. The services serving every context are declared here; each
context's write service and relay come from `contexts.deployment`.
"""

from dataclasses import dataclass

from bff.settings import BffSettings
from identity.settings import IdentitySettings
from runtime.settings import CommonSettings

FIRST_PORT = 8000
"""The first context's write service, whose sidecar is on `CONFIG_SIDECAR_PORT`."""
CONFIG_SIDECAR_PORT = 8005
SIDECAR_SCRIPT = "strata-config-sidecar"


def default_port(model: type[CommonSettings], field: str) -> int:
    port: int = model.model_fields[field].default
    return port


@dataclass(frozen=True)
class LiveService:
    """A service following its live settings file, on `port` by default."""

    name: str
    port: int

    @property
    def config_sidecar(self) -> str:
        return f"config-{self.name}"

    def live_settings_file(self, folder: str) -> str:
        """The file the service follows and its config sidecar writes."""
        return f"{folder.rstrip('/')}/{self.name}.json"

    def config_sidecar_port(self, first: int = CONFIG_SIDECAR_PORT) -> int:
        """Its sidecar's port when the first sidecar's is `first`."""
        return self.port + first - FIRST_PORT


@dataclass(frozen=True)
class SharedService(LiveService):
    """A service serving every context, run by its console script `script`."""

    script: str


IDENTITY = LiveService("identity", default_port(IdentitySettings, "identity_port"))
PROJECTOR = SharedService(
    "projector", default_port(CommonSettings, "projector_port"), "strata-projector"
)
READ_API = SharedService(
    "read-api", default_port(CommonSettings, "read_api_port"), "strata-read-api"
)
BFF_WEB = SharedService("bff-web", default_port(BffSettings, "bff_web_port"), "strata-bff-web")
BFF_MOBILE = SharedService(
    "bff-mobile", default_port(BffSettings, "bff_mobile_port"), "strata-bff-mobile"
)
SHARED_SERVICES = (PROJECTOR, READ_API, BFF_WEB, BFF_MOBILE)
"""Run by their scripts as they are (identity, which is told more, is `IDENTITY`)."""
