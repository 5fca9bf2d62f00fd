"""Checks on the raw query string and path, for what parsed parameters can no longer tell.

Starlette decodes a query string leniently: invalid UTF-8 after percent-decoding becomes U+FFFD,
raw non-ASCII bytes are read as Latin-1, and of a repeated parameter only the last value is kept.
A read route, and a command route for its few parameters, therefore first checks, for each of
its own parameters, that the value is percent-encoded UTF-8 and that the parameter is given at
most once; otherwise the answer is a 422 naming it. Parameters a route does not know are
ignored, as is conventional. The server decodes the path as leniently (`a%FFb` would be the
hobby `a\ufffdb`), so a path that is not percent-encoded UTF-8 is a 422 on its text parameters
too. A `%` not followed by two hex digits (`%zz`, `%2`, a trailing `%`) is no escape: decoders
keep it as it is (`%zz` would be the hobby `%zz`), where `%25` is the one way to write `%`, so it
is refused alike, in the path and in a route's own query parameters.

These checks come after who calls is settled (a `QueryCheckedRoute` is a `SettledRoute`): a
request without a valid token is a 401 whatever its path and query, as FastAPI's own checks of
the parameters' values (a UUID, a limit in range) come after the dependencies that verify it.
"""

import re
from collections import Counter
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError

from runtime.http.before_body import Handler, SettledRoute

Problem = tuple[str, str]
"""(parameter name, what is wrong with it)."""
NOT_UTF_8 = "must be UTF-8, with every byte outside ASCII percent-encoded"
BAD_ESCAPE = "has a `%` not followed by two hex digits: write `%25` for `%`"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _decoded(raw: bytes) -> str | None:
    """The text of a percent-encoded name or value (`+` is a space), or None if not UTF-8."""
    if not raw.isascii():
        return None
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def encoding_problem(raw: bytes) -> str | None:
    """What is wrong with the percent-encoding of a raw name, value or path (None if nothing)."""
    if _BAD_ESCAPE.search(raw) is not None:
        return BAD_ESCAPE
    return NOT_UTF_8 if _decoded(raw) is None else None


def query_string_problems(raw: bytes, names: Collection[str]) -> list[Problem]:
    """What is wrong in `raw` with the parameters called `names` (empty when nothing is)."""
    problems: list[Problem] = []
    seen: Counter[str] = Counter()
    for pair in raw.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name = _decoded(raw_name)
        if name is None or name not in names:
            continue  # an unknown parameter: ignored
        seen[name] += 1
        problem = encoding_problem(raw_value)
        if problem is not None:
            problems.append((name, problem))
    problems += [(name, f"was given {n} times; give it once") for name, n in seen.items() if n > 1]
    return problems


def path_problems(raw_path: bytes | None, values: dict[str, Any]) -> list[Problem]:
    """The path parameters among `values` that a path `raw_path` not in percent-encoded UTF-8
    made up (their text holds the U+FFFD its bad bytes were decoded to, or the `%` of a
    malformed escape kept as it is); none if it is."""
    problem = None if raw_path is None else encoding_problem(raw_path)
    if problem is None:
        return []
    mark = "%" if problem == BAD_ESCAPE else "\ufffd"
    made_up = [name for name, value in values.items() if mark in str(value)]
    return [(name, problem) for name in made_up] or [("", problem)]


def _rejection(problems: list[Problem], where: str = "query") -> RequestValidationError:
    return RequestValidationError(
        [
            {"loc": (where, name) if name else (where,), "msg": message, "type": f"{where}_string"}
            for name, message in problems
        ]
    )


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters of a route, its dependencies' included."""
    names = frozenset(field.alias for field in dependant.query_params)
    return names.union(*(query_names(sub) for sub in dependant.dependencies))


class QueryCheckedRoute(SettledRoute):
    """An APIRoute that refuses its own parameters when undecodable or repeated, once who calls
    is settled."""

    def settled_handler(self) -> Handler:
        handler = super().settled_handler()
        names = query_names(self.dependant)

        async def checked(request: Request) -> Response:
            scope = request.scope
            bad_path = path_problems(scope.get("raw_path"), scope.get("path_params", {}))
            if bad_path:
                raise _rejection(bad_path, "path")
            problems = query_string_problems(scope.get("query_string", b""), names)
            if problems:
                raise _rejection(problems)
            return await handler(request)

        return checked
