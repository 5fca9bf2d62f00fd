"""The gateway's HTTP filters, in the order a request meets them, and what it logs and answers
by itself.

1. `header_mutation`: every request carries `X-Correlation-Id` (the client's, else Envoy's
   request id), and every answer repeats it;
2. `local_ratelimit`: one token bucket for the whole listener, the outer guard before anything
   costly (the services' per-user limits are finer); over it, 429 with `Retry-After`;
3. `lua`: an `Authorization` scheme spelt in any case (`bearer`, RFC 9110 §11.1) is rewritten
   to `Bearer`, the one spelling `jwt_authn` looks for, as the services take any;
4. `jwt_authn`: an ES256 token of the identity service (its JWKS fetched and cached), on every
   path but the public ones, taken from the `Authorization` header only (never the query string,
   which the access log and proxies keep); the header is forwarded, as the services verify the
   token again;
5. `router`.

Envoy's own answers (400 of a request it cannot read, 401, 403, 404, 413, 426, 429, 431, 503,
504) are RFC 9457 problem+json bodies, as the services' are (`local_replies`), of the same
catalog (`runtime.http.problem_types`) and titles.
"""

import math
from dataclasses import dataclass
from typing import Any

from gateway.upstreams import IDENTITY
from runtime.http.problem_types import (
    BAD_REQUEST,
    CONTENT_TOO_LARGE,
    FORBIDDEN,
    GATEWAY_TIMEOUT,
    HEADERS_TOO_LARGE,
    NOT_FOUND,
    RATE_LIMITED,
    SERVICE_UNAVAILABLE,
    UNAUTHENTICATED,
    UPGRADE_REQUIRED,
    ProblemType,
    title_of,
)
from runtime.http.request_heads import TWO_HOSTS

Config = dict[str, Any]

JWT_PROVIDER = "identity"
AUDIENCE = "strata"
CORRELATION_HEADER = "x-correlation-id"
"""The services' `X-Correlation-Id` (write_api.command_http), in HTTP/2's lower case."""
REQUEST_ID = "%REQ(X-REQUEST-ID)%"
CLIENT_PATH = "%PATH(NQ:ORIG_OR_PATH)%"
"""The path as the client sent it, before a prefix was stripped, without its query string,
which may hold what must be neither logged nor echoed (a token)."""
CLIENT_ADDRESS = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
"""The address of the connection's peer (with `use_remote_address`, never read from a header)."""
JWT_PAYLOAD = "jwt_payload"
"""The verified token's claims, in the request's dynamic metadata (logged: `sub`)."""

PUBLIC_PATHS = (
    "/healthz",
    *(
        f"{IDENTITY.prefixes[0]}{path}"
        for path in ("/sign-up", "/token", "/jwks.json", "/.well-known/openid-configuration")
    ),
)
"""The paths open without a token: the gateway's health, and identity's sign-up, token endpoint,
keys and discovery document."""


@dataclass(frozen=True)
class TokenBucket:
    """`max_tokens` requests at once, refilled by `tokens_per_fill` every `fill_seconds`."""

    max_tokens: int
    tokens_per_fill: int
    fill_seconds: float

    @property
    def retry_after(self) -> str:
        """Whole seconds until the next refill: when a refused request may succeed."""
        return str(max(1, math.ceil(self.fill_seconds)))


def duration(seconds: float) -> str:
    """A protobuf Duration as Envoy's YAML takes it."""
    return f"{seconds:g}s"


def _typed(kind: str, **fields: Any) -> Config:
    return {"@type": f"type.googleapis.com/{kind}", **fields}


def _always(runtime_key: str) -> Config:
    return {
        "runtime_key": runtime_key,
        "default_value": {"numerator": 100, "denominator": "HUNDRED"},
    }


def correlation_filter() -> Config:
    mutations = {
        "request_mutations": [_add_if_absent(CORRELATION_HEADER, REQUEST_ID)],
        "response_mutations": [_add_if_absent(CORRELATION_HEADER, "%REQ(X-CORRELATION-ID)%")],
    }
    kind = "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": _typed(kind, mutations=mutations),
    }


def overwritten(header: str, value: str) -> Config:
    """A header set to `value`, replacing any the message had."""
    return {
        "header": {"key": header, "value": value},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }


def _add_if_absent(header: str, value: str) -> Config:
    return {"append": {"header": {"key": header, "value": value}, "append_action": "ADD_IF_ABSENT"}}


def rate_limit_filter(bucket: TokenBucket) -> Config:
    kind = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
    config = _typed(
        kind,
        stat_prefix="gateway_rate_limit",
        token_bucket={
            "max_tokens": bucket.max_tokens,
            "tokens_per_fill": bucket.tokens_per_fill,
            "fill_interval": duration(bucket.fill_seconds),
        },
        filter_enabled=_always("gateway_rate_limit.enabled"),
        filter_enforced=_always("gateway_rate_limit.enforced"),
        response_headers_to_add=[overwritten("retry-after", bucket.retry_after)],
    )
    return {"name": "envoy.filters.http.local_ratelimit", "typed_config": config}


@dataclass(frozen=True)
class TokenIssuer:
    """Whose tokens the gateway accepts: their `iss`, and where their keys are."""

    issuer: str
    jwks_uri: str
    jwks_cache_seconds: float


BEARER_SCHEME_LUA = """
function envoy_on_request(handle)
  local headers = handle:headers()
  local value = headers:get("authorization")
  if value == nil then
    return
  end
  local scheme, rest = string.match(value, "^(%a+)( .*)$")
  if scheme ~= nil and scheme ~= "Bearer" and string.lower(scheme) == "bearer" then
    headers:replace("authorization", "Bearer" .. rest)
  end
end
"""


def bearer_scheme_filter() -> Config:
    kind = "envoy.extensions.filters.http.lua.v3.Lua"
    config = _typed(kind, default_source_code={"inline_string": BEARER_SCHEME_LUA})
    return {"name": "envoy.filters.http.lua", "typed_config": config}


def jwt_filter(issuer: TokenIssuer) -> Config:
    provider = {
        "issuer": issuer.issuer,
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "audiences": [AUDIENCE],
        "forward": True,
        "payload_in_metadata": JWT_PAYLOAD,
        "remote_jwks": {
            "http_uri": {"uri": issuer.jwks_uri, "cluster": IDENTITY.name, "timeout": "2s"},
            "cache_duration": duration(issuer.jwks_cache_seconds),
            # Fetched at start and refreshed before expiry, off the requests' path.
            "async_fetch": {"fast_listener": False},
            "retry_policy": {
                "num_retries": 3,
                "retry_back_off": {"base_interval": "0.2s", "max_interval": "3s"},
            },
        },
    }
    public = [{"match": {"path": path}} for path in PUBLIC_PATHS]
    rules = [*public, {"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}}]
    kind = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
    config = _typed(kind, providers={JWT_PROVIDER: provider}, rules=rules)
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": config}


def router_filter() -> Config:
    kind = "envoy.extensions.filters.http.router.v3.Router"
    return {"name": "envoy.filters.http.router", "typed_config": _typed(kind)}


def http_filters(bucket: TokenBucket, issuer: TokenIssuer) -> list[Config]:
    return [
        correlation_filter(),
        rate_limit_filter(bucket),
        bearer_scheme_filter(),
        jwt_filter(issuer),
        router_filter(),
    ]


ACCESS_LOG_FIELDS = {
    "time": "%START_TIME%",
    "logger": "strata.gateway",
    "method": "%REQ(:METHOD)%",
    "path": CLIENT_PATH,
    "status": "%RESPONSE_CODE%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "upstream": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "request_id": REQUEST_ID,
    "correlation_id": "%REQ(X-CORRELATION-ID)%",
    "subject": f"%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:{JWT_PAYLOAD}:sub)%",
    "client": CLIENT_ADDRESS,
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
}
"""One JSON line per request on stdout, beside the services' JSON logs."""


def access_log() -> list[Config]:
    kind = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    config = _typed(kind, log_format={"json_format": ACCESS_LOG_FIELDS})
    return [{"name": "envoy.access_loggers.stdout", "typed_config": config}]


@dataclass(frozen=True)
class LocalProblem:
    """A problem+json body of type `kind` for Envoy's own answers of `envoy_status` (by default
    the kind's status, which is the one sent); with `details_prefix`, only those whose response
    code details start with it."""

    kind: ProblemType
    envoy_status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    details_prefix: str | None = None
    detail: str = "%LOCAL_REPLY_BODY%"

    @property
    def status(self) -> int:
        return self.envoy_status or self.kind.status

    def mapper(self) -> Config:
        status = self.kind.status
        body = {
            "type": self.kind.uri,
            "title": title_of(status),
            "status": status,
            "detail": self.detail,
            "instance": CLIENT_PATH,
        }
        mapper: Config = {
            "filter": self._filter(),
            "body_format_override": {
                "json_format": body,
                "content_type": "application/problem+json",
                # no `"instance": null` when the request line could not be read
                "omit_empty_values": True,
            },
        }
        if status != self.status:
            mapper["status_code"] = status
        if self.headers:
            mapper["headers_to_add"] = [overwritten(key, value) for key, value in self.headers]
        return mapper

    def _filter(self) -> Config:
        comparison = {
            "op": "EQ",
            "value": {
                "default_value": self.status,
                "runtime_key": f"gateway_local_reply.{self.status}",
            },
        }
        status: Config = {"status_code_filter": {"comparison": comparison}}
        if self.details_prefix is None:
            return status
        kind = "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
        expression = f"response.code_details.startsWith('{self.details_prefix}')"
        details = {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": _typed(kind, expression=expression),
            }
        }
        return {"and_filter": {"filters": [status, details]}}


CODE_DETAILS = "%RESPONSE_CODE_DETAILS%"
"""Envoy's reason for refusing a request it could not parse, such as
`http1.unexpected_underscore` or `path_normalization_failed` (its body says only "Bad Request")."""
BEARER = (("www-authenticate", 'Bearer error="invalid_token"'),)
TWO_HOSTS_PROBLEM = LocalProblem(
    BAD_REQUEST, details_prefix="direct_response", detail=TWO_HOSTS.detail
)
"""The body of `bootstrap.joined_hosts_route`'s 400, the one direct response that is one."""
LOCAL_PROBLEMS = (
    TWO_HOSTS_PROBLEM,
    LocalProblem(BAD_REQUEST, detail=CODE_DETAILS),
    LocalProblem(UNAUTHENTICATED),
    # jwt_authn answers 403 for a token of another audience: to a client, an invalid token.
    LocalProblem(UNAUTHENTICATED, envoy_status=403, headers=BEARER, details_prefix="jwt_authn"),
    LocalProblem(FORBIDDEN, detail=CODE_DETAILS),  # an upgrade, say
    LocalProblem(NOT_FOUND, detail="no service answers this path"),
    LocalProblem(CONTENT_TOO_LARGE),
    LocalProblem(UPGRADE_REQUIRED, detail=CODE_DETAILS),
    LocalProblem(RATE_LIMITED),
    LocalProblem(HEADERS_TOO_LARGE, detail=CODE_DETAILS),
    LocalProblem(SERVICE_UNAVAILABLE),
    LocalProblem(GATEWAY_TIMEOUT),
)
"""The first whose filter matches is used."""


def local_replies() -> Config:
    return {"mappers": [problem.mapper() for problem in LOCAL_PROBLEMS]}
