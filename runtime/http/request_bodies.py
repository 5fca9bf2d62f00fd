"""The gate every command body passes: JSON only (or a form, on the paths that take one, such
as an OAuth2 token endpoint), in UTF-8, not content-coded, and bounded in size.

Without it, a `text/plain` body reaches validation as a string ("Input should be a valid
dictionary"), and a body of any size is read into memory before anything looks at it.

The gate answers when the body is first read, not when the request arrives: a request that
routing refuses (404, 405) or authentication refuses (401: `runtime.http.before_body`) gets
that answer whatever its body, so nothing about the body is told to a caller who may not send
one. The refusal is an `HTTPException` (415 or 413) raised by the request's `receive`, which
the problem handlers answer (`runtime.http.problems.HTTP_ERRORS`).
"""

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.http.header_fields import MalformedField, one_field
from runtime.http.json_bodies import COMMAND_METHODS
from runtime.http.problem_types import CONTENT_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE

DEFAULT_MAX_BODY_BYTES = 64 * 1024
FORM = "application/x-www-form-urlencoded"


def is_json(content_type: str) -> bool:
    """`application/json` or any `application/<x>+json`, parameters (charset) aside."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == FORM


def charset_problem(content_type: str) -> str | None:
    """Why the `charset` parameters of a Content-Type are not UTF-8, the one encoding read here
    (RFC 8259 §8.1), naming the first other; None when there is none or each is UTF-8 (any
    case, quoted or not)."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"')
        if name.strip().lower() == "charset" and charset.lower() != "utf-8":
            return f"a request body must be UTF-8, not charset={charset[:40]!r}"
    return None


def coding_problem(fields: list[str]) -> str | None:
    """Why a request's Content-Encoding field lines refuse its body: any coding but `identity`
    (a gzip body read as plain would be another request), naming the first; None if none."""
    codings = [coding.strip() for field in fields for coding in field.split(",")]
    for coding in codings:
        if coding and coding.lower() != "identity":
            return f"a request body must not be content-coded, not {coding[:40]!r}; send it as is"
    return None


class JsonBodies:
    """ASGI middleware: a command (POST, PUT, PATCH, DELETE) that carries a body must say it is
    JSON, in one Content-Type field with no charset but UTF-8, and without a content coding
    other than `identity` (else 415), and may hold at most `max_bytes` (else 413, from
    Content-Length before a byte is read, or from the chunks as they are read). On `form_paths`
    it must be a form instead. Each refusal is raised when the app reads the body. Queries pass
    untouched."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        form_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.form_paths = form_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMAND_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        headers = request.headers
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and declared in (None, "0"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(request)
        too_large = HTTPException(
            CONTENT_TOO_LARGE.status, f"a request body may hold at most {self.max_bytes} bytes"
        )
        if refusal is None and declared is not None and declared.isdigit() and not chunked:
            # the server reads exactly the declared length: judged before a byte is read
            refusal = too_large if int(declared) > self.max_bytes else None
        if refusal is not None:
            receive = _refusing(refusal)
        elif chunked:
            receive = _bounded(receive, self.max_bytes, too_large)
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> HTTPException | None:
        """The 415 for a body that is not of the path's media type (JSON, or a form), not UTF-8,
        or content-coded; None when it may be read."""
        headers = request.headers
        form = request.scope["path"] in self.form_paths
        wanted = FORM if form else "application/json"
        try:
            content_type = one_field(headers.getlist("content-type"), "Content-Type")
        except MalformedField as error:  # several types, as if joined by commas: none is right
            return _unsupported(f"a request body must be {wanted}: {error}")
        if not (is_form if form else is_json)(content_type or ""):
            given = content_type or "none"
            return _unsupported(f"a request body must be {wanted}, not {given[:100]!r}")
        coded = coding_problem(headers.getlist("content-encoding"))
        if coded:  # RFC 9110 §15.5.16: a 415 for a coding the server does not take
            return _unsupported(coded, {"Accept-Encoding": "identity"})
        unreadable = charset_problem(content_type or "")
        return _unsupported(unreadable) if unreadable else None


def _unsupported(detail: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(UNSUPPORTED_MEDIA_TYPE.status, detail, headers)


def _refusing(refusal: HTTPException) -> Receive:
    """A `receive` that raises `refusal` instead of handing over the body."""

    async def receive() -> Message:
        raise refusal

    return receive


def _bounded(receive: Receive, max_bytes: int, too_large: HTTPException) -> Receive:
    """`receive`, raising `too_large` once the body it has handed over exceeds `max_bytes`."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > max_bytes:
                raise too_large
        return message

    return bounded
