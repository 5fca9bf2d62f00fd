"""The ports of scripts/stack's processes moved by `STRATA_PORT_OFFSET` (runtime/port_offset.py), so
a second whole stack can run beside the default one.

`python -m contexts.stack_ports` prints, one `VARIABLE=value` a line, what scripts/stack exports
before it starts anything: the offset itself (normalised: `007` is `7`), then each port variable
of the processes it runs that is not set, at its default moved by the offset, then the URLs the
services find each other by (identity's issuer, whence every service's JWKS and token URLs; the
read API's URL for the BFFs) on the ports in effect, when not set. A port variable that is set
wins, unmoved. The write services' and relays' ports count from `STRATA_PORT` and
`STRATA_RELAY_PORT`, the config sidecars' from `STRATA_CONFIG_SIDECAR_PORT`, and the simulators'
and write services' URLs follow their ports (contexts/deployment.py). A bad offset, or one that
moves a port past 65535, is one line on stderr and exit code 1.
"""

import os
import sys
from collections.abc import Mapping

from bff.settings import BffSettings
from contexts.live_services import default_port
from eventlog import nats_cluster
from identity.settings import IdentitySettings
from runtime.port_offset import VARIABLE, PortOffsetError, port_offset, shifted
from runtime.settings import CommonSettings

PROG = "python -m contexts.stack_ports"
HOST = "127.0.0.1"
SETTINGS_PORTS: tuple[tuple[type[CommonSettings], str], ...] = (
    (CommonSettings, "port"),
    (CommonSettings, "relay_port"),
    (CommonSettings, "projector_port"),
    (CommonSettings, "read_api_port"),
    (CommonSettings, "config_sidecar_port"),
    (CommonSettings, "payment_provider_port"),
    (CommonSettings, "carrier_port"),
    (IdentitySettings, "identity_port"),
    (BffSettings, "bff_web_port"),
    (BffSettings, "bff_mobile_port"),
)
NATS_CLUSTER_PORTS = {
    "STRATA_STACK_NATS_PORT": nats_cluster.CLIENT_PORT,
    "STRATA_STACK_NATS_ROUTE_PORT": nats_cluster.ROUTE_PORT,
    "STRATA_STACK_NATS_MONITOR_PORT": nats_cluster.MONITOR_PORT,
}
URLS = {
    "STRATA_IDENTITY_ISSUER": "STRATA_IDENTITY_PORT",
    "STRATA_READ_API_URL": "STRATA_READ_API_PORT",
}
"""Each base URL variable scripts/stack sets, and the port variable of the service it names."""


def default_ports() -> dict[str, int]:
    """Each port variable of scripts/stack's processes and its default port."""
    ports = {
        f"STRATA_{field.upper()}": default_port(model, field) for model, field in SETTINGS_PORTS
    }
    return ports | NATS_CLUSTER_PORTS


def stack_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What scripts/stack exports: the offset, the unset ports moved by it, the unset URLs."""
    offset = port_offset(environ)
    ports = {
        variable: str(shifted(port, offset))
        for variable, port in default_ports().items()
        if not environ.get(variable)
    }
    in_effect = {**ports, **{v: environ[v] for v in default_ports() if environ.get(v)}}
    urls = {
        variable: f"http://{HOST}:{in_effect[port]}"
        for variable, port in URLS.items()
        if not environ.get(variable)
    }
    return {VARIABLE: str(offset), **ports, **urls}


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments:
        sys.exit(f"usage: {PROG}")
    try:
        environment = stack_environment(os.environ)
    except PortOffsetError as error:
        sys.exit(f"{PROG}: {VARIABLE} {error}")
    print("\n".join(f"{variable}={value}" for variable, value in environment.items()))


if __name__ == "__main__":
    main()
