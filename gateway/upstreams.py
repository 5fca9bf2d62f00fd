"""What the gateway routes to: each registered context's write service (by the paths its router
serves), the read API, the identity service and the two backends-for-frontends.

An `Upstream` says which path prefixes are its, whether the gateway strips its prefix, how long a
request to it may take and its port; a `Placement` says on which host each upstream runs (the
loopback address in scripts/stack, the service's name on the compose network, given ports in the
tests).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI

from contexts.deployment import deployments
from contexts.registered import REGISTRY
from contexts.registry import Registry
from runtime.port_offset import shifted

READ_API_PORT = 8003
IDENTITY_PORT = 8200
WEB_BFF_PORT = 8210
MOBILE_BFF_PORT = 8220

WRITE_TIMEOUT_SECONDS = 10.0
"""A command's own deadline (STRATA_REQUEST_TIMEOUT, 5 s) plus its wait for a replica (2 s),
with room for the answer."""
READ_TIMEOUT_SECONDS = 15.0
"""A read may wait for read-your-writes up to STRATA_READ_WAIT_MAX_SECONDS (10 s)."""
IDENTITY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Upstream:
    """A service behind the gateway.

    `prefixes` are the path prefixes routed to it (each matched as a whole path segment:
    `/users` takes `/users` and `/users/...`, never `/usersx`). With `strip_prefix`, the one
    prefix is the gateway's name for the service and is removed before forwarding
    (`/read/users/1` reaches the read API as `/users/1`)."""

    name: str
    port: int
    prefixes: tuple[str, ...]
    timeout_seconds: float
    strip_prefix: bool = False

    def __post_init__(self) -> None:
        if not self.prefixes:
            raise ValueError(f"upstream {self.name!r} serves no path")
        if self.strip_prefix and len(self.prefixes) != 1:
            raise ValueError(f"upstream {self.name!r} strips one prefix, not {self.prefixes}")


def router_prefixes(router: APIRouter) -> tuple[str, ...]:
    """The first path segments of a router's routes (`/users` of `/users/{user_id}/name`), in
    the order they first appear."""
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi().get("paths", {})
    segments = (f"/{path.strip('/').split('/')[0]}" for path in paths)
    return tuple(dict.fromkeys(segment for segment in segments if segment != "/"))


def write_upstreams(registry: Registry = REGISTRY) -> list[Upstream]:
    """Each context's write service, serving its router's paths, on its deployment's port."""
    return [
        Upstream(
            d.write_service,
            d.write_port(),
            router_prefixes(d.context.router),
            WRITE_TIMEOUT_SECONDS,
        )
        for d in deployments(registry)
    ]


EDGE_UPSTREAMS = (
    Upstream("read-api", READ_API_PORT, ("/read",), READ_TIMEOUT_SECONDS, strip_prefix=True),
    Upstream(
        "identity", IDENTITY_PORT, ("/identity",), IDENTITY_TIMEOUT_SECONDS, strip_prefix=True
    ),
    Upstream("bff-web", WEB_BFF_PORT, ("/web",), READ_TIMEOUT_SECONDS),
    Upstream("bff-mobile", MOBILE_BFF_PORT, ("/mobile",), READ_TIMEOUT_SECONDS),
)
"""The services that are not contexts. The BFFs serve their own prefix (`/web/dashboard`); the
read API and identity are reached under the gateway's name for them."""

IDENTITY = EDGE_UPSTREAMS[1]


def gateway_upstreams(registry: Registry = REGISTRY) -> list[Upstream]:
    """Every upstream of the gateway; no path prefix is claimed twice."""
    upstreams = [*write_upstreams(registry), *EDGE_UPSTREAMS]
    claimed = [prefix for upstream in upstreams for prefix in upstream.prefixes]
    twice = sorted({prefix for prefix in claimed if claimed.count(prefix) > 1})
    if twice:
        raise ValueError(f"path prefixes routed to two upstreams: {', '.join(twice)}")
    return upstreams


@dataclass(frozen=True)
class Placement:
    """Where the upstreams run: on `host`, or on their own name as host (`by_name`); on their
    default ports unless `ports` gives another by upstream name."""

    host: str | None
    ports: Mapping[str, int] = field(default_factory=dict)

    def address(self, upstream: Upstream) -> tuple[str, int]:
        host = upstream.name if self.host is None else self.host
        return host, self.ports.get(upstream.name, upstream.port)


LOOPBACK = Placement("127.0.0.1")
"""scripts/stack: every service on this machine, on its default port."""
BY_NAME = Placement(None)
"""compose.yaml: each service reached by its service name."""


def loopback(port_offset: int, registry: Registry = REGISTRY) -> Placement:
    """scripts/stack with `STRATA_PORT_OFFSET`: every service on this machine, on its default
    port moved by `port_offset`."""
    upstreams = gateway_upstreams(registry)
    return Placement(LOOPBACK.host, {u.name: shifted(u.port, port_offset) for u in upstreams})
