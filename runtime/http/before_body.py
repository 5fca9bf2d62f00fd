"""What a route settles before it looks at anything else of a request: who calls, and whether
they may (their rate limit).

FastAPI reads and decodes a body before it solves any dependency, and the route classes here
check the raw path and query string before FastAPI sees them (`runtime.http.query_string`), so a
caller without a valid token learned from a 415, 413 or 422 what the service thinks of their
body, path or query. A dependency marked `before_body(settle)` is settled first instead:
`settled_first` wraps a route's handler so that it awaits `settle(request)` of each marked
dependency of the route (in FastAPI's order) before the handler reads anything. The dependency
still runs in its turn, so `settle` must be cheap the second time within one request (it keeps
what it found on the request). A `SettledRoute` is a route so wrapped: the route classes that
look at a request before FastAPI does (its body, its path and query) are `SettledRoute`s and
add their checks to its `settled_handler`, so that they all come after the marked dependencies.

A dependency a test has overridden (`app.dependency_overrides`) is not settled first: the
override decides.
"""

from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Settle = Callable[[Request], Awaitable[Any]]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
D = TypeVar("D", bound=Callable[..., Any])

_SETTLED_BY = "__settled_before_body_by__"


def before_body(settle: Settle) -> Callable[[D], D]:
    """Mark a dependency that `settle(request)` settles (raising what it would raise) before
    the request's body is read."""

    def mark(dependency: D) -> D:
        setattr(dependency, _SETTLED_BY, settle)
        return dependency

    return mark


def settled_before_body(dependency: D) -> D:
    """Mark a dependency that takes the request alone and is settled, itself, before the body
    is read."""
    return before_body(dependency)(dependency)


def as_configured(route: APIRoute) -> Any:
    """The route as FastAPI builds its handler: the route, or the context of a router including
    it (its prefix, dependencies and settings added), which FastAPI hands to
    `get_route_handler` this way (a context variable) while it builds that handler."""
    context = fastapi_routing._effective_route_context_var.get()
    if context is not None and context.original_route is route:
        return context
    return route


def settled_first(route: Any, handler: Handler) -> Handler:
    """`handler`, after the marked dependencies of `route` (as configured) are settled."""
    first = tuple(_marked(route.dependant))
    if not first:
        return handler
    overrides = getattr(route.dependency_overrides_provider, "dependency_overrides", None)

    async def settling(request: Request) -> Response:
        for call, settle in first:
            if not overrides or call not in overrides:
                await settle(request)
        return await handler(request)

    return settling


class SettledRoute(APIRoute):
    """An APIRoute whose marked dependencies are settled before anything else of a request is
    looked at: its path and query, its body, its other dependencies."""

    def get_route_handler(self) -> Handler:
        return settled_first(as_configured(self), self.settled_handler())

    def settled_handler(self) -> Handler:
        """The handler awaited once the route's marked dependencies are settled: FastAPI's,
        which route classes wrap (in the order of their bases) with the checks they add."""
        return super().get_route_handler()


def _marked(dependant: Dependant) -> Iterator[tuple[Callable[..., Any], Settle]]:
    """The marked dependencies under `dependant`, each once, in the order FastAPI solves them
    (a dependency's own dependencies before it)."""
    seen: set[int] = set()
    for sub in dependant.dependencies:
        for call, settle in (*_marked(sub), *_own_mark(sub)):
            if id(settle) not in seen:
                seen.add(id(settle))
                yield call, settle


def _own_mark(dependant: Dependant) -> tuple[tuple[Callable[..., Any], Settle], ...]:
    settle: Settle | None = getattr(dependant.call, _SETTLED_BY, None)
    if dependant.call is None or settle is None:
        return ()
    return ((dependant.call, settle),)
