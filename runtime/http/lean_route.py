"""`LeanRoute`: a FastAPI route that answers without FastAPI's per-request dependency solving.

FastAPI resolves an endpoint's parameters anew on every request: it walks the dependency tree,
builds cache keys, runs each sub-dependency's own parameter extraction (such as an `HTTPBearer`
only there for the OpenAPI document), and decodes the body with the standard `json` module. On
the hot command endpoints that machinery cost more CPU than the command's own work. A
`LeanRoute` plans the same resolution once, when FastAPI builds its handler, and then per
request:

1. reads the body and decodes it (`runtime.http.json_bodies.loads_unique`, which refuses a
   repeated member name; a document it cannot decode at once goes to msgspec, and one msgspec
   refuses is decoded again by `json`, whose error FastAPI reports: a 422 on `body` naming
   the offset, or a 400 for bytes that are not UTF-8 or nest too deeply), before any
   dependency, as FastAPI does, but for those settled before the body
   (`runtime.http.before_body`: who calls), as every `JsonRoute` has it; a route without a
   body parameter refuses any body but `{}` instead
   (`runtime.http.json_bodies.refuse_stray_body`, a 422 on `body`). (How
   deep is too deep depends on the stack below, for both decoders: msgspec gives up a few
   levels deeper than `json`, so a document nested some 990 levels may be refused on `body`
   as not an object here and as nested too deeply by FastAPI: a 422 on `body` either way.);
2. awaits the route's dependencies in FastAPI's order, each through its lean equivalent
   (`served_lean_by`) or, for an async dependency taking only the `Request`, itself;
3. validates the path parameters and the body with FastAPI's own functions
   (`request_params_to_args`, `request_body_to_args`), so values, errors and their `loc` are
   FastAPI's, raised together as one `RequestValidationError`;
4. awaits the endpoint, which returns its `Response`.

Exceptions leave it as they leave FastAPI's handler, to the same exception handlers. Everything
else stays FastAPI's: routing, the OpenAPI document (built from the same `APIRoute`), the
middleware. A route it cannot plan (a query, header or cookie parameter of the endpoint itself,
a dependency with parameters of its own and no lean equivalent, an endpoint that does not return
a `Response`, a form body, a body size limit) keeps FastAPI's handler, as does every request
while the app has dependency overrides (tests).
"""

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, get_type_hints

import msgspec
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from pydantic_core import PydanticUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runtime.http.before_body import as_configured
from runtime.http.json_bodies import JsonRoute, loads_unique, refuse_stray_body

Resolver = Callable[[Request], Awaitable[Any]]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
D = TypeVar("D", bound=Callable[..., Any])

_LEAN_EQUIVALENT = "__lean_equivalent__"
_DECODER = msgspec.json.Decoder()


def served_lean_by(resolver: Resolver) -> Callable[[D], D]:
    """Mark a dependency whose value `resolver(request)` gives, raising what it would raise:
    a `LeanRoute` awaits the resolver instead of solving the dependency's parameters (which
    then only document the endpoint)."""

    def mark(dependency: D) -> D:
        setattr(dependency, _LEAN_EQUIVALENT, resolver)
        return dependency

    return mark


class LeanRoute(JsonRoute):
    """An `APIRoute` whose requests skip FastAPI's dependency solving where a plan covers them;
    `lean` says whether its handler has one. FastAPI's handler, where it answers, reads JSON
    bodies as the plan does (a `JsonRoute`)."""

    lean = False

    def settled_handler(self) -> Handler:
        fastapi_handler = super().settled_handler()
        route = as_configured(self)
        plan = _plan(route)
        self.lean = plan is not None
        if plan is None:
            return fastapi_handler
        overrides = getattr(route.dependency_overrides_provider, "dependency_overrides", None)

        async def handle(request: Request) -> Response:
            if overrides:  # a test replaced a dependency: FastAPI knows how
                return await fastapi_handler(request)
            return await plan.answer(request)

        return handle


@dataclass(frozen=True)
class _Plan:
    endpoint: Callable[..., Awaitable[Response]]
    request_name: str | None
    dependencies: tuple[tuple[str | None, Resolver], ...]
    dependant: Dependant
    embed_body: bool

    async def answer(self, request: Request) -> Response:
        dependant = self.dependant
        if dependant.body_params:
            body = await _body(request)
        else:  # a command that takes no body: none, or {}
            body = PydanticUndefined
            await refuse_stray_body(request)
        values: dict[str, Any] = {}
        if self.request_name is not None:
            values[self.request_name] = request
        for name, resolve in self.dependencies:
            value = await resolve(request)
            if name is not None:
                values[name] = value
        path_values, errors = request_params_to_args(dependant.path_params, request.path_params)
        values.update(path_values)
        if dependant.body_params:
            body_values, body_errors = await request_body_to_args(
                dependant.body_params, body, self.embed_body
            )
            values.update(body_values)
            errors.extend(body_errors)
        if errors:
            raise RequestValidationError(errors, body=body)
        return await self.endpoint(**values)


def _plan(route: Any) -> _Plan | None:
    dependant: Dependant = route.dependant
    endpoint = dependant.call
    if (
        endpoint is None
        or not inspect.iscoroutinefunction(endpoint)
        or not _returns_response(endpoint)
        or route.max_body_size is not None
        or not _strict_content_type(route)
        or (route.body_field is not None and isinstance(route.body_field.field_info, Form))
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or _special_parameters(dependant)
    ):
        return None
    dependencies = []
    for sub in dependant.dependencies:
        resolver = _lean_resolver(sub)
        if resolver is None:
            return None
        dependencies.append((sub.name, resolver))
    calls = [id(sub.call) for sub in dependant.dependencies]
    if len(set(calls)) < len(calls):
        return None  # FastAPI would call a repeated dependency once: not planned
    return _Plan(
        endpoint,
        dependant.request_param_name,
        tuple(dependencies),
        dependant,
        embed_body=route._embed_body_fields,
    )


def _strict_content_type(route: Any) -> bool:
    """Whether a body without a Content-Type stays bytes (FastAPI's default), as `_body` has it."""
    strict = route.strict_content_type
    return bool(strict.value if isinstance(strict, DefaultPlaceholder) else strict)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    returned = get_type_hints(endpoint).get("return")
    return inspect.isclass(returned) and issubclass(returned, Response)


def _special_parameters(dependant: Dependant) -> bool:
    """Parameters other than the Request: the WebSocket, the temporary Response, background
    tasks, security scopes; a LeanRoute leaves them to FastAPI."""
    return any(
        name is not None
        for name in (
            dependant.websocket_param_name,
            dependant.http_connection_param_name,
            dependant.response_param_name,
            dependant.background_tasks_param_name,
            dependant.security_scopes_param_name,
        )
    )


def _lean_resolver(sub: Dependant) -> Resolver | None:
    """What a LeanRoute awaits for a dependency: its declared lean equivalent, or the dependency
    itself when it is a coroutine function taking the Request alone."""
    call = sub.call
    declared: Resolver | None = getattr(call, _LEAN_EQUIVALENT, None)
    if declared is not None:
        return declared
    request_name = sub.request_param_name
    takes_request_only = (
        not (sub.path_params or sub.query_params or sub.header_params)
        and not (sub.cookie_params or sub.body_params or sub.dependencies)
        and not _special_parameters(sub)
    )
    if call is None or request_name is None or not takes_request_only:
        return None
    if not inspect.iscoroutinefunction(call):
        return None

    async def resolve(request: Request) -> Any:
        return await call(**{request_name: request})

    return resolve


async def _body(request: Request) -> Any:
    """The request body as FastAPI reads it for a JSON body parameter: the decoded document,
    the bytes themselves when the Content-Type is not JSON (validation then refuses them), or
    `PydanticUndefined` when there are none; its errors are FastAPI's."""
    try:
        data = await request.body()
        if not data:
            return PydanticUndefined
        if not _is_json(request.headers.get("content-type")):
            return data
        return loads_unique(data, _decode)
    except json.JSONDecodeError as error:
        problem = {
            "type": "json_invalid",
            "loc": ("body", error.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": error.msg},
        }
        raise RequestValidationError([problem], body=error.doc) from error
    except HTTPException:
        raise
    except Exception as error:
        raise HTTPException(400, "There was an error parsing the body") from error


def _decode(data: str) -> Any:
    """msgspec decodes a subset of what `json` does, to the same values; for the rest (lone
    surrogates, NaN, malformed documents) `json` decides."""
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return json.loads(data)


@lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule (strict content type): `application/json` or `application/*+json`."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
