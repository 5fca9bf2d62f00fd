"""Which routes a LeanRoute answers itself, and that it calls what FastAPI would, in its order."""

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel

from runtime.http.lean_route import LeanRoute, served_lean_by

CALLS: list[str] = []


class Body(BaseModel):
    name: str


async def gate(request: Request) -> None:
    CALLS.append("gate")


async def first(request: Request) -> str:
    CALLS.append("first")
    return "first"


async def _second_lean(request: Request) -> str:
    CALLS.append("second, lean")
    return request.headers.get("x-second", "none")


@served_lean_by(_second_lean)
async def second(x_second: Annotated[str | None, Header()] = None) -> str:
    CALLS.append("second, by FastAPI")
    return x_second or "none"


async def unmarked(x_third: Annotated[str | None, Header()] = None) -> str:
    return x_third or "none"


First = Annotated[str, Depends(first)]
Second = Annotated[str, Depends(second)]

router = APIRouter(route_class=LeanRoute, dependencies=[Depends(gate)])


@router.post("/planned/{number}")
async def planned(number: int, body: Body, one: First, two: Second) -> JSONResponse:
    CALLS.append("endpoint")
    return JSONResponse({"number": number, "name": body.name, "one": one, "two": two})


@router.post("/query")
async def with_a_query(q: str) -> JSONResponse:
    return JSONResponse({"q": q})


@router.post("/dict")
async def returning_a_dict() -> dict[str, Any]:
    return {}


@router.post("/unmarked")
async def with_an_unmarked_dependency(three: Annotated[str, Depends(unmarked)]) -> JSONResponse:
    return JSONResponse({"three": three})


@router.post("/repeated", dependencies=[Depends(first)])
async def with_a_repeated_dependency(one: First) -> JSONResponse:
    return JSONResponse({"one": one})


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_only_what_a_plan_covers_is_lean(client: TestClient) -> None:
    lean = {
        context.path
        for context in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(context.original_route, LeanRoute) and context.original_route.lean
    }
    assert lean == {"/planned/{number}"}


def test_a_plan_calls_the_dependencies_in_fastapis_order_and_validates_alike(
    client: TestClient,
) -> None:
    CALLS.clear()
    response = client.post("/planned/7", json={"name": "Ada"}, headers={"X-Second": "2"})
    assert response.json() == {"number": 7, "name": "Ada", "one": "first", "two": "2"}
    assert CALLS == ["gate", "first", "second, lean", "endpoint"]
    refused = client.post("/planned/x", json={"name": 1})
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["path", "number"], ["body", "name"]]


def test_the_routes_without_a_plan_still_answer(client: TestClient) -> None:
    assert client.post("/query", params={"q": "x"}).json() == {"q": "x"}
    assert client.post("/dict").json() == {}
    assert client.post("/unmarked", headers={"X-Third": "3"}).json() == {"three": "3"}
    CALLS.clear()
    assert client.post("/repeated").json() == {"one": "first"}
    assert CALLS == ["gate", "first"]  # once, as FastAPI caches it within a request
