"""The Envoy bootstrap of the gateway, as a document ready for YAML: one listener for the
clients, a route per upstream path prefix, a cluster per upstream, the admin interface.

Routes: first, a request with two `Host` fields is refused (`joined_hosts_route`). Then each
prefix has two, tried in order. GETs and HEADs, which the services answer without
changing anything, are retried on a reset or a failed connection (a service restarting); every
other method is sent once, as a retried command could be applied twice. A 5xx is an answer, not
retried: a read's 503 `position-not-reached` has already waited its `wait`, and a retry would
wait it again and spend the caller's rate limit. Each route has its upstream's timeout.
Clusters eject a host that answers 5xx five times in a row (outlier detection) and find their
hosts by DNS (a compose service's address changes when it restarts).

The client's address reaches the services in `X-Forwarded-For`, and the gateway is its only
source: the header is replaced by the address of the connection's peer, never appended to, so
a client cannot name another address by sending the header itself (the services believe the
header from the gateway's address: docs/rate-limits.md).
"""

from dataclasses import dataclass
from typing import Any

from gateway.filters import (
    CLIENT_ADDRESS,
    Config,
    TokenBucket,
    TokenIssuer,
    access_log,
    duration,
    http_filters,
    local_replies,
    overwritten,
)
from gateway.upstreams import Placement, Upstream

IDEMPOTENT_METHODS = "GET|HEAD"
RETRY_ON = "reset,connect-failure,refused-stream"
RETRIES = 2


@dataclass(frozen=True)
class Gateway:
    """One deployment's gateway: where it listens, where its upstreams are, whose tokens it
    takes and how many requests it lets through."""

    listen_host: str
    listen_port: int
    admin_host: str
    admin_port: int
    placement: Placement
    issuer: TokenIssuer
    bucket: TokenBucket


def _socket(host: str, port: int) -> Config:
    return {"socket_address": {"address": host, "port_value": port}}


def _route_match(upstream: Upstream, prefix: str) -> Config:
    if upstream.strip_prefix:
        return {"prefix": f"{prefix}/"}
    return {"path_separated_prefix": prefix}


def _forward(upstream: Upstream, retried: bool) -> Config:
    action: Config = {"cluster": upstream.name, "timeout": duration(upstream.timeout_seconds)}
    if upstream.strip_prefix:
        action["prefix_rewrite"] = "/"
    if retried:
        action["retry_policy"] = {
            "retry_on": RETRY_ON,
            "num_retries": RETRIES,
            "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
        }
    return action


def upstream_routes(upstream: Upstream) -> list[Config]:
    """Its idempotent route (retried), then the route of every other method (sent once)."""
    idempotent = {"name": ":method", "string_match": {"safe_regex": {"regex": IDEMPOTENT_METHODS}}}
    routes = []
    for prefix in upstream.prefixes:
        match = _route_match(upstream, prefix)
        routes += [
            {
                "match": {**match, "headers": [idempotent]},
                "route": _forward(upstream, retried=True),
            },
            {"match": match, "route": _forward(upstream, retried=False)},
        ]
    return routes


def health_route() -> Config:
    """The gateway's own liveness, answered by Envoy."""
    return {
        "match": {"path": "/healthz"},
        "direct_response": {"status": 200, "body": {"inline_string": '{"status":"ok"}'}},
        "response_headers_to_add": [overwritten("content-type", "application/json")],
    }


FORWARDED_FOR = overwritten("x-forwarded-for", CLIENT_ADDRESS)
"""The peer's address alone: Envoy's own would append it to what the client sent, and the
services, which believe the gateway's hops, would read the client's value past it."""


def joined_hosts_route() -> Config:
    """A request with two Host fields, which Envoy takes and joins with a comma into one
    authority (no setting of its refuses them): a 400, as the services answer it (RFC 9112
    §3.2; no host name holds a comma). Its problem body is `filters.TWO_HOSTS_PROBLEM`'s."""
    joined = {"name": ":authority", "string_match": {"contains": ","}}
    return {"match": {"prefix": "/", "headers": [joined]}, "direct_response": {"status": 400}}


def route_config(upstreams: list[Upstream]) -> Config:
    routes = [
        joined_hosts_route(),
        health_route(),
        *(r for upstream in upstreams for r in upstream_routes(upstream)),
    ]
    virtual_host = {"name": "strata", "domains": ["*"], "routes": routes}
    return {
        "name": "strata",
        "virtual_hosts": [virtual_host],
        "request_headers_to_add": [FORWARDED_FOR],
    }


def connection_manager(gateway: Gateway, upstreams: list[Upstream]) -> Config:
    kind = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    config = {
        "@type": f"type.googleapis.com/{kind}",
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
        # HTTP/1.0 clients (ApacheBench, old scripts) are answered, not refused with a 426.
        "http_protocol_options": {"accept_http_10": True, "default_host_for_http_10": "strata"},
        "access_log": access_log(),
        "local_reply_config": local_replies(),
        "http_filters": http_filters(gateway.bucket, gateway.issuer),
        "route_config": route_config(upstreams),
    }
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def listener(gateway: Gateway, upstreams: list[Upstream]) -> Config:
    return {
        "name": "clients",
        "address": _socket(gateway.listen_host, gateway.listen_port),
        "filter_chains": [{"filters": [connection_manager(gateway, upstreams)]}],
    }


def cluster(upstream: Upstream, placement: Placement) -> Config:
    host, port = placement.address(upstream)
    endpoint = {"endpoint": {"address": _socket(host, port)}}
    return {
        "name": upstream.name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": upstream.name,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
        "outlier_detection": {
            "consecutive_5xx": 5,
            "interval": "10s",
            "base_ejection_time": "30s",
            "max_ejection_percent": 50,
        },
    }


def bootstrap(gateway: Gateway, upstreams: list[Upstream]) -> dict[str, Any]:
    """The whole bootstrap document of `gateway` routing to `upstreams`."""
    return {
        "admin": {"address": _socket(gateway.admin_host, gateway.admin_port)},
        "static_resources": {
            "listeners": [listener(gateway, upstreams)],
            "clusters": [cluster(upstream, gateway.placement) for upstream in upstreams],
        },
    }
