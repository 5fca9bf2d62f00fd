"""The gate every command body passes before routing: JSON only (or a form, on the paths that
take one, such as an OAuth2 token endpoint), in UTF-8, not content-coded, and bounded in size.

Without it, a `text/plain` body reaches validation as a string ("Input should be a valid
dictionary"), and a body of any size is read into memory before anything looks at it.
"""

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.http.header_fields import MalformedField, one_field
from runtime.http.json_bodies import COMMAND_METHODS
from runtime.http.problem_types import CONTENT_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE
from runtime.http.problems import problem

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


class BodyTooLarge(Exception):
    pass


class JsonBodies:
    """ASGI middleware: a command (POST, PUT, PATCH, DELETE) that carries a body must say it is
    JSON, in one Content-Type field with no charset but UTF-8, and without a content coding
    other than `identity` (else 415), and may hold at most `max_bytes` (else 413, from
    Content-Length or while reading). On `form_paths` it must be a form instead. Queries pass
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
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        too_large = f"a request body may hold at most {self.max_bytes} bytes"
        if not chunked:  # the server reads exactly the declared length: check it, stream it
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await problem(request, CONTENT_TOO_LARGE, too_large)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            await problem(request, CONTENT_TOO_LARGE, too_large)(scope, receive, send)
            return
        await self.app(scope, _replay(body), send)

    def _refusal(self, request: Request) -> Response | None:
        """The 415 for a body that is not of the path's media type (JSON, or a form), not UTF-8,
        or content-coded; None when it may be read."""
        headers = request.headers
        form = request.scope["path"] in self.form_paths
        wanted = FORM if form else "application/json"
        try:
            content_type = one_field(headers.getlist("content-type"), "Content-Type")
        except MalformedField as error:  # several types, as if joined by commas: none is right
            return problem(
                request, UNSUPPORTED_MEDIA_TYPE, f"a request body must be {wanted}: {error}"
            )
        if not (is_form if form else is_json)(content_type or ""):
            given = content_type or "none"
            detail = f"a request body must be {wanted}, not {given[:100]!r}"
            return problem(request, UNSUPPORTED_MEDIA_TYPE, detail)
        coded = coding_problem(headers.getlist("content-encoding"))
        if coded:  # RFC 9110 §15.5.16: a 415 for a coding the server does not take
            return problem(
                request, UNSUPPORTED_MEDIA_TYPE, coded, headers={"Accept-Encoding": "identity"}
            )
        unreadable = charset_problem(content_type or "")
        return problem(request, UNSUPPORTED_MEDIA_TYPE, unreadable) if unreadable else None

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A `receive` that hands the app the body already read, then waits like the real one."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
