"""Every problem type the HTTP APIs answer with: one catalog for the handlers, OpenAPI and README.

The error handlers build their answers from these entries (`runtime.http.problems.problem`), the
OpenAPI document of each API lists, for every operation, the entries whose `answers` holds for it
(`runtime.http.openapi`), and README.md's errors table is `problem_table()`, which a test checks.
A problem type that is in no operation's answers (`method-not-allowed`) belongs to a path, not
to an operation. An operation may also declare problem types by slug in its `x-problems`
extension (FastAPI's `openapi_extra`), for what its parameters cannot tell: rate limits, the
caller's identity.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of one operation: enough to know what it can answer."""

    method: str
    path: str
    parameters: frozenset[tuple[str, str]]
    """(location, name) pairs, such as ("query", "limit"); header names in lower case."""
    has_body: bool
    tags: frozenset[str]
    secured: bool = False
    """It names a security scheme (a bearer token): it can answer 401 and 403."""
    declared: frozenset[str] = frozenset()
    """The slugs of its `x-problems` extension: problem types it answers by its own say-so."""

    def takes(self, location: str, name: str) -> bool:
        if location == "header":
            name = name.lower()
        return (location, name) in self.parameters

    def takes_any(self, location: str) -> bool:
        return any(where == location for where, _ in self.parameters)


Answers = Callable[[Operation], bool]


@dataclass(frozen=True)
class ProblemType:
    status: int
    slug: str
    when: str
    """When an API answers it, in Markdown: the README table and the OpenAPI descriptions."""
    answers: Answers
    schema: str = "Problem"
    """The component schema of its body (see `runtime.http.openapi.PROBLEM_SCHEMAS`)."""
    retry_after: bool = False

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"

    @property
    def title(self) -> str:
        return title_of(self.status)

    def answered_by(self, operation: Operation) -> bool:
        return self.slug in operation.declared or self.answers(operation)


TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    426: "Upgrade required",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Gateway timeout",
    505: "HTTP version not supported",
}
"""The `title` of a problem by its status, the same from the services and the gateway."""


def title_of(status: int) -> str:
    return TITLES.get(status, "Error")


def _header(name: str) -> Answers:
    return lambda operation: operation.takes("header", name)


def _query(name: str) -> Answers:
    return lambda operation: operation.takes("query", name)


def _takes_input(operation: Operation) -> bool:
    return bool(operation.parameters) or operation.has_body


def _is_command(operation: Operation) -> bool:
    return operation.method != "get"


def _uses_stores(operation: Operation) -> bool:
    return "health" not in operation.tags


def _needs_token(operation: Operation) -> bool:
    return operation.secured


def _is_readiness(operation: Operation) -> bool:
    return operation.path.endswith("/readyz")


def _declared_only(_: Operation) -> bool:
    return False


BAD_REQUEST = ProblemType(
    400,
    "bad-request",
    "a request the HTTP server cannot parse: an unknown method, a control character in a header,"
    " `Content-Length` with chunked; an HTTP/1.1 request without `Host`, or any with two `Host`"
    " fields or one joining several with commas (no `instance`: the request line may be what"
    " could not be read; the connection is closed)",
    _declared_only,  # refused before any operation is chosen
)
BAD_HEADER = ProblemType(
    400,
    "http-error",
    "a malformed `If-Match` or `Idempotency-Key` header on a command, or `X-Correlation-Id` or"
    " `X-Causation-Id` on any request (one of the last three sent in two fields is malformed"
    " too)",
    lambda _: True,  # the trace headers are checked on every request (runtime.http.trace_headers)
)
UNAUTHENTICATED = ProblemType(
    401,
    "unauthenticated",
    "no bearer token, or one that proves nothing: malformed, expired, not yet valid, another"
    " issuer or audience, a `kid` the identity's JWKS (just fetched) does not hold, a bad"
    " signature, an algorithm other than ES256, or more than one `Authorization` field"
    " (`WWW-Authenticate: Bearer`)",
    _needs_token,
)
FORBIDDEN = ProblemType(
    403,
    "forbidden",
    "a valid token that may not do this: another user's resource, a service account without"
    " the scope `<context>:read` or `<context>:write`, an operator's endpoint",
    _needs_token,
)
NOT_FOUND = ProblemType(
    404,
    "not-found",
    "an unknown id (the read API: not in the read model yet), or a path that matches no route",
    lambda operation: operation.takes_any("path"),
)
NOT_FOUND_AT_TIME = ProblemType(
    404,
    "not-found-at-time",
    "write API `as_of`: the aggregate exists but was created after that time",
    _query("as_of"),
)
METHOD_NOT_ALLOWED = ProblemType(
    405, "method-not-allowed", "the path exists, but not with this method", lambda _: False
)
CONTENT_TOO_LARGE = ProblemType(
    413,
    "content-too-large",
    "a command body over `STRATA_MAX_BODY_BYTES` (64 KiB by default)",
    lambda operation: operation.has_body,
)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    415,
    "unsupported-media-type",
    "a command body that is not `application/json`, says its type in two `Content-Type` fields,"
    " names a `charset` other than `utf-8`, or is content-coded (a `Content-Encoding` other than"
    " `identity`; the answer says `Accept-Encoding: identity`)",
    lambda operation: operation.has_body,
)
RULE_VIOLATED = ProblemType(
    409,
    "rule-violated",
    "a domain rule (the message says which), e.g. paying a draft order",
    _is_command,
)
VALUE_TAKEN = ProblemType(
    409, "value-taken", "the email address is held by another user", _is_command
)
VERSION_MISMATCH = ProblemType(
    412,
    "version-mismatch",
    "`If-Match` names no current version (weak tags never do; nothing matches a create)",
    _header("If-Match"),
)
VALIDATION_ERROR = ProblemType(
    422,
    "validation-error",
    "malformed or out-of-range input (body, path, query), or a body object naming a member"
    " twice (`errors` names where: `body.name`; a body that is not JSON is an error on `body`,"
    ' "not a JSON document: Extra data at character 40"); `errors` lists each field',
    _takes_input,
    schema="ValidationProblem",
)
INVALID_VALUE = ProblemType(
    422,
    "invalid-value",
    "a value the domain refuses that passed the field checks",
    _is_command,
)
UNKNOWN_REFERENCE = ProblemType(
    422,
    "unknown-reference",
    "a command names another context's aggregate this service has not heard of, e.g. an order"
    " for a user registered a moment ago (send that command's `position`)",
    lambda operation: _is_command(operation) and operation.takes("query", "position"),
)
IDEMPOTENCY_KEY_REUSED = ProblemType(
    422,
    "idempotency-key-reused",
    "an `Idempotency-Key` sent again with another request",
    _header("Idempotency-Key"),
)
RATE_LIMITED = ProblemType(
    429,
    "rate-limited",
    "the caller (its token's `sub`, else its address) went over the route's limit"
    " (`STRATA_RATE_LIMIT_*`); `Retry-After` says when the window frees",
    _declared_only,
    retry_after=True,
)
INTERNAL_ERROR = ProblemType(
    500, "internal-error", "an unexpected error; it is logged with its traceback", lambda _: True
)
SERVICE_UNAVAILABLE = ProblemType(
    503,
    "service-unavailable",
    "a store is unreachable or did not answer within `STRATA_REQUEST_TIMEOUT`, a write"
    " service has its bound of commands in flight already (adaptive, at most"
    " `STRATA_MAX_COMMANDS_IN_FLIGHT`; refused at once, nothing done), or the token's key"
    " cannot be had because the identity's JWKS cannot be fetched (the token is not refused:"
    " send it again) (`Retry-After`)",
    _uses_stores,
    retry_after=True,
)
NOT_READY = ProblemType(
    503, "not-ready", "`/readyz`: a store does not answer (the detail names it)", _is_readiness
)
POSITION_NOT_REACHED = ProblemType(
    503,
    "position-not-reached",
    "`position`: the read models did not reach it within `wait` seconds, or a command's service"
    " had not taken it in within `STRATA_REPLICA_WAIT_SECONDS` (`Retry-After`; `position` and"
    " `reached` in the body)",
    _query("position"),
    schema="PositionProblem",
    retry_after=True,
)

UPGRADE_REQUIRED = ProblemType(
    426,
    "upgrade-required",
    "the gateway: a request in a protocol it does not serve (the detail is Envoy's reason)",
    _declared_only,
)
URI_TOO_LONG = ProblemType(
    414,
    "uri-too-long",
    "the services: a request target (path and query) over 8 KiB; the connection is closed",
    _declared_only,
)
HEADERS_TOO_LARGE = ProblemType(
    431,
    "headers-too-large",
    "the request line and header fields over 60 KiB in all, or more than 100 fields (the"
    " gateway, the services), or, in the services, a field line over 8 KiB; the connection is"
    " closed",
    _declared_only,
)
HTTP_VERSION_NOT_SUPPORTED = ProblemType(
    505,
    "http-version-not-supported",
    "the services: a request line naming a version other than HTTP/1.0 and HTTP/1.1 (such as"
    " `HTTP/2.0` or `HTTP/0.9`); the connection is closed",
    _declared_only,
)
GATEWAY_TIMEOUT = ProblemType(
    504,
    "gateway-timeout",
    "the gateway: the service did not answer within the route's timeout",
    _declared_only,
)

PROBLEM_TYPES: tuple[ProblemType, ...] = (
    BAD_REQUEST,
    BAD_HEADER,
    UNAUTHENTICATED,
    FORBIDDEN,
    NOT_FOUND,
    NOT_FOUND_AT_TIME,
    METHOD_NOT_ALLOWED,
    RULE_VIOLATED,
    VALUE_TAKEN,
    VERSION_MISMATCH,
    CONTENT_TOO_LARGE,
    URI_TOO_LONG,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    INVALID_VALUE,
    UNKNOWN_REFERENCE,
    IDEMPOTENCY_KEY_REUSED,
    UPGRADE_REQUIRED,
    RATE_LIMITED,
    HEADERS_TOO_LARGE,
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    NOT_READY,
    POSITION_NOT_REACHED,
    GATEWAY_TIMEOUT,
    HTTP_VERSION_NOT_SUPPORTED,
)


def problem_table() -> str:
    """README.md's table of every problem type, one Markdown row each."""
    rows = [f"| {p.status} | `{p.uri}` | {p.when} |" for p in PROBLEM_TYPES]
    return "\n".join(["| status | `type` | when |", "|---|---|---|", *rows])
