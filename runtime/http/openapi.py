"""The OpenAPI document of an API, completed with what FastAPI cannot see: problems and headers.

FastAPI documents a 422 `HTTPValidationError` as `application/json` and nothing else. Every
error here is `application/problem+json` (`runtime.http.problems`), so `document_problems`
rewrites the document once, when it is first generated: for every operation, every status of
the problem types in `PROBLEM_TYPES` that the operation can answer, and the response headers it
sends. It works from the generated document, not from the routes, so a new route gets it with
no work.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from fastapi import FastAPI

from runtime.http.problem_types import PROBLEM_TYPES, Operation, ProblemType

PROBLEM_JSON = "application/problem+json"
JSONSchema = dict[str, Any]

_PROBLEM: JSONSchema = {
    "type": "object",
    "description": "RFC 9457 problem details. `type` is `/problems/<slug>`, documented in the"
    " README; the other members are the same for every type.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>`: what kind of problem."},
        "title": {"type": "string", "description": "The HTTP status in words."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What was wrong, in words to act on."},
        "instance": {"type": "string", "description": "The path of the request."},
    },
}
_FIELD_ERROR: JSONSchema = {
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "field": {
            "type": "string",
            "description": "`<location>.<name>`, such as `body.email` or `query.limit`.",
        },
        "message": {"type": "string"},
    },
}


def _ref(schema: str) -> JSONSchema:
    return {"$ref": f"#/components/schemas/{schema}"}


def _problem_with(
    properties: dict[str, JSONSchema], optional: dict[str, JSONSchema] | None = None
) -> JSONSchema:
    """A problem with the members `properties`, and those `optional` where they apply."""
    every = {**properties, **(optional or {})}
    return {
        "allOf": [
            _ref("Problem"),
            {"type": "object", "required": list(properties), "properties": every},
        ]
    }


PROBLEM_SCHEMAS: dict[str, JSONSchema] = {
    "Problem": _PROBLEM,
    "ValidationProblem": _problem_with(
        {"errors": {"type": "array", "items": _FIELD_ERROR}},
        optional={
            "errors_omitted": {
                "type": "integer",
                "description": "How many bad fields `errors` leaves out (it lists the first"
                " 20); absent when it lists them all.",
            }
        },
    ),
    "PositionProblem": _problem_with(
        {
            "position": {"type": "string", "description": "The position asked for."},
            "reached": {
                "type": "string",
                "description": "The positions reached (as in `X-Read-Position`); empty if none.",
            },
        }
    ),
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


@dataclass(frozen=True)
class Header:
    """A response header, and which responses (operation, status) carry it."""

    name: str
    description: str
    sent: Callable[[Operation, int], bool]
    schema: JSONSchema

    def doc(self) -> JSONSchema:
        return {"description": self.description, "schema": self.schema}


def _succeeded(status: int) -> bool:
    return 200 <= status < 300


def _etag_sent(operation: Operation, status: int) -> bool:
    """On the write API's answers about one aggregate: its commands and its state at a time."""
    versioned = operation.takes("header", "If-Match") or operation.takes("query", "as_of")
    return versioned and _succeeded(status)


def _read_position_sent(operation: Operation, status: int) -> bool:
    """On the read routes' answers, their 404s and their 503s when a position was not reached."""
    return operation.takes("query", "position") and (_succeeded(status) or status in (404, 503))


def _answers_retry_after(operation: Operation, status: int) -> bool:
    return any(p.retry_after for p in _answered(operation, status))


HEADERS: tuple[Header, ...] = (
    Header(
        "ETag",
        'The aggregate\'s version, such as `"3"`: send it back in `If-Match`.',
        _etag_sent,
        {"type": "string"},
    ),
    Header(
        "Location",
        "The path of the aggregate created.",
        lambda _, status: status == 201,
        {"type": "string"},
    ),
    Header(
        "X-Correlation-Id",
        "The request's `X-Correlation-Id`, or the one generated for it.",
        lambda op, status: _succeeded(status) and op.takes("header", "X-Correlation-Id"),
        {"type": "string"},
    ),
    Header(
        "Idempotent-Replayed",
        "`true` when this is the stored answer to an earlier request with this key.",
        lambda op, status: _succeeded(status) and op.takes("header", "Idempotency-Key"),
        {"type": "string", "enum": ["true"]},
    ),
    Header(
        "X-Read-Position",
        "The checkpoints of the read models behind the endpoint, read before the data, such as"
        " `users:120,orders:98`.",
        _read_position_sent,
        {"type": "string"},
    ),
    Header(
        "Retry-After",
        "Seconds to wait before retrying.",
        _answers_retry_after,
        {"type": "integer"},
    ),
)


def document_problems(app: FastAPI, extra: Sequence[ProblemType] = ()) -> None:
    """Make `app` serve its OpenAPI document completed by `with_problems`, with the problem
    types of the catalog and `extra`, the app's own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problems(generate(), (*PROBLEM_TYPES, *extra))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_problems(
    document: dict[str, Any], problem_types: Sequence[ProblemType] = PROBLEM_TYPES
) -> dict[str, Any]:
    """`document` with the problems and headers of every operation (changed in place)."""
    for path, item in document.get("paths", {}).items():
        for method, spec in item.items():
            operation = _operation(method, path, spec)
            responses: dict[str, JSONSchema] = spec["responses"]
            responses.pop("422", None)  # FastAPI's HTTPValidationError
            answered = (p for p in problem_types if p.answered_by(operation))
            for status, problems in _by_status(answered):
                responses[str(status)] = _problem_response(problems)
            for code, response in responses.items():
                _add_headers(response, operation, int(code))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(unused, None)
    schemas.update(PROBLEM_SCHEMAS)
    return document


def _operation(method: str, path: str, spec: JSONSchema) -> Operation:
    parameters = frozenset(
        (p["in"], p["name"].lower() if p["in"] == "header" else p["name"])
        for p in spec.get("parameters", [])
    )
    return Operation(
        method=method,
        path=path,
        parameters=parameters,
        has_body="requestBody" in spec,
        tags=frozenset(spec.get("tags", [])),
        secured=bool(spec.get("security")),
        declared=frozenset(spec.get("x-problems", [])),
    )


def _answered(operation: Operation, status: int) -> list[ProblemType]:
    return [p for p in PROBLEM_TYPES if p.status == status and p.answered_by(operation)]


def _by_status(problems: Iterable[ProblemType]) -> list[tuple[int, list[ProblemType]]]:
    ordered = sorted(problems, key=lambda p: p.status)
    return [(status, list(group)) for status, group in groupby(ordered, key=lambda p: p.status)]


def _problem_response(problems: list[ProblemType]) -> JSONSchema:
    """One status: each problem type's body schema, with `type` and `status` pinned down."""
    by_schema = groupby(sorted(problems, key=lambda p: p.schema), key=lambda p: p.schema)
    variants = []
    for name, group in by_schema:
        uris = [p.uri for p in group]
        pinned = {"type": {"enum": uris}, "status": {"const": problems[0].status}}
        variants.append({"allOf": [_ref(name), {"properties": pinned}]})
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    description = "\n".join(f"- `{p.uri}`: {p.when}" for p in problems)
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


def _add_headers(response: JSONSchema, operation: Operation, status: int) -> None:
    headers = {h.name: h.doc() for h in HEADERS if h.sent(operation, status)}
    if headers:
        response.setdefault("headers", {}).update(headers)
