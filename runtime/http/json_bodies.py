"""JSON request bodies decoded once, refusing an object that names a member twice.

`{"name": "a", "name": "b"}` is JSON that parsers read differently (the first value, the last,
an error), so a proxy on the way and this service could act on different requests. Every
service here refuses it instead: `loads_unique` raises `DuplicateMember`, naming where the
repeated member is (`body.lines.0.sku`), with names compared as decoded (`"na\\u006de"` is
`"name"`). Every other document decodes to the same value as before.

The hot path is one pass: jiter decodes and detects duplicates together. A document jiter
refuses (a lone surrogate, a byte-order mark, deep nesting, malformed JSON, bytes that are not
UTF-8) is decoded by the caller's own decoder from its UTF-8 text, and then scanned for
duplicates.
`JsonRoute` puts this decoding under FastAPI's own handler, for routes that do not decode
their bodies themselves (`runtime.http.lean_route` does).

A command that takes no body takes none, or the empty object `{}` that clients often send
(`refuse_stray_body`): anything else (a malformed document, a repeated member, any member, an
array or a string) is a 422 on `body`, before the command runs, rather than ignored.
"""

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import jiter
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from runtime.http.before_body import SettledRoute

Path = tuple[str | int, ...]
Loads = Callable[[str], Any]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_BODY = "this command takes no body (send none, or {})"
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]|[^\s"{}\[\],]+|\s+', re.DOTALL)


class DuplicateMember(ValueError):
    """A JSON object of the body names one member twice; `path` leads to the second one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"the member {path[-1]!r} appears twice in one object")

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in ("body", *self.path))


def loads_unique(data: bytes, fallback: Loads = json.loads) -> Any:
    """The document `data`, decoded as `fallback` decodes its text; `DuplicateMember` if one of
    its objects names a member twice. `fallback`'s errors for what is not JSON are its own.

    The text is UTF-8, as JSON between systems must be (RFC 8259 §8.1; a leading byte-order mark
    is ignored, as it allows): bytes that are not raise `UnicodeDecodeError`. (`json` would
    also read UTF-16 and UTF-32, which a proxy on the way may read otherwise.)"""
    try:
        return jiter.from_json(data, catch_duplicate_keys=True)
    except ValueError:
        document = fallback(data.decode("utf-8-sig"))
        path = first_duplicate(data)
        if path is not None:
            raise DuplicateMember(path) from None
        return document


@dataclass
class _Frame:
    """An object or array being scanned: the path part of its current member or item."""

    names: set[str] | None  # an object's member names so far; None for an array
    current: str | int = 0
    expects_name: bool = True


def first_duplicate(data: bytes) -> Path | None:
    """Where the first repeated member name of a JSON document is, in document order; `data`
    is a document that `json` reads (any encoding it detects). A scan with its own stack, so
    as deep as the document goes."""
    text = data.decode(json.detect_encoding(data), "surrogatepass")
    frames: list[_Frame] = []
    for match in _TOKENS.finditer(text):
        part = match.group()
        top = frames[-1] if frames else None
        if part in ("{", "["):
            frames.append(_Frame(set() if part == "{" else None))
        elif part in ("}", "]"):
            frames.pop()
        elif part == "," and top is not None:
            if top.names is None:
                top.current = int(top.current) + 1
            else:
                top.expects_name = True
        elif part[0] == '"' and top is not None and top.names is not None and top.expects_name:
            name: str = json.loads(part)
            if name in top.names:
                return (*(frame.current for frame in frames[:-1]), name)
            top.names.add(name)
            top.current = name
            top.expects_name = False
    return None


async def refuse_stray_body(request: Request) -> None:
    """Raise a `RequestValidationError` on `body` unless the command `request`, of a route that
    takes no body, has none or the empty object `{}`."""
    if request.method not in COMMAND_METHODS:
        return
    data = await request.body()
    if not data:
        return
    try:
        document = loads_unique(data)
    except DuplicateMember as error:
        why = f"{error}"
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = "this one is not JSON"
    else:
        if document == {}:
            return
        what = "an object with members" if isinstance(document, dict) else "not an object"
        why = f"this one is {what}"
    refusal = {"loc": ("body",), "msg": f"{NO_BODY}, and {why}", "type": "no_body"}
    raise RequestValidationError([refusal])


def reads_own_body(route: APIRoute) -> bool:
    """Whether the endpoint of a route without a body parameter reads the body itself (as a
    form), as its OpenAPI operation then declares (`openapi_extra`'s `requestBody`)."""
    return "requestBody" in (route.openapi_extra or {})


class JsonRequest(Request):
    """A request whose `json()` is `loads_unique` of its body."""

    async def json(self) -> Any:
        if not hasattr(self, "_unique_json"):
            self._unique_json = loads_unique(await self.body())
        return self._unique_json


class JsonRoute(SettledRoute):
    """An APIRoute whose JSON body FastAPI reads through `JsonRequest`: a repeated member name
    fails as an unparsable body does (FastAPI's 400 from the error, `runtime.http.problems`
    answers it as a 422 naming the member). A command route without a body parameter refuses
    a body other than `{}` (`refuse_stray_body`). Its `before_body` dependencies (who calls)
    are settled before the body is read (a `SettledRoute`)."""

    def settled_handler(self) -> Handler:
        """The handler that reads the body, once the route's `before_body` dependencies are
        settled."""
        handler = super().settled_handler()
        body = self.body_field
        if body is None and not reads_own_body(self):

            async def without_body(request: Request) -> Response:
                await refuse_stray_body(request)
                return await handler(request)

            return without_body
        if body is None or isinstance(body.field_info, Form):
            return handler

        async def with_unique_json(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return with_unique_json
