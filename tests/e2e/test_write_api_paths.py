"""Hobby paths and raw JSON text against a real `strata-write-api` (uvicorn), over HTTP.

Clients and servers normalise paths in their own ways (dot segments, `%2F`, `%25`), and the
test client of the component tests decodes paths twice: what counts is a real server.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.api import unique_email
from tests.support.auth import OPERATOR
from tests.support.processes import entry_point, running_service

HOBBIES = [
    "a/b",
    "/",
    "a/",
    "...",
    ". .",
    "%",
    "100%",
    "a%2Fb",  # the text "%2F", not a slash
    "%25",
    "a?b",
    "a#b",
    "a+b",
    "a b",
    "Ünïcödé ☃",
    "日本語",
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir: Path = tmp_path_factory.mktemp("paths") / "var"
    script = entry_point("strata-write-api")
    with running_service(script, {"STRATA_DATA_DIR": str(data_dir)}, "STRATA_PORT") as running:
        base, _ = running
        with httpx.Client(base_url=base, headers=OPERATOR, timeout=10) as client:
            yield client


def encoded(hobby: str) -> str:
    return quote(hobby, safe="").replace(".", "%2E")


def test_every_hobby_added_is_removed_by_its_encoded_name(api: httpx.Client) -> None:
    user = api.post("/users", json={"name": "Ada", "email": unique_email()}).json()["id"]
    for hobby in [*HOBBIES, " lead "]:
        assert api.post(f"/users/{user}/hobbies", json={"hobby": hobby}).status_code == 200
    assert api.get(f"/users/{user}").json()["hobbies"] == [*HOBBIES, "lead"]

    for hobby in [*HOBBIES, " LEAD"]:
        response = api.delete(f"/users/{user}/hobbies/{encoded(hobby)}")
        assert response.status_code == 200, (hobby, response.status_code, response.text)

    assert api.get(f"/users/{user}").json()["hobbies"] == []


@pytest.mark.parametrize(("segment", "hobby"), [("%2E", "."), ("%2E%2E", ".."), ("%20..", "..")])
def test_a_dot_segment_in_a_hobby_path_reaches_the_route(
    api: httpx.Client, segment: str, hobby: str
) -> None:
    """`.` and `..` are refused as new hobbies, but one stored before is still named in a path:
    `%2E%2E` directly (uvicorn keeps it), and with a space beside it through any proxy."""
    user = api.post("/users", json={"name": "Ada", "email": unique_email()}).json()["id"]
    response = api.delete(f"/users/{user}/hobbies/{segment}")
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == f"hobby {hobby!r} is not in the profile"


@pytest.mark.parametrize("segment", ["%ED%A0%80", "a%FFb"])  # a surrogate UTF-8 encoded; Latin-1
def test_invalid_utf8_in_a_hobby_path_is_422(api: httpx.Client, segment: str) -> None:
    """The server decodes the bytes leniently, to U+FFFD, which the path did not name."""
    user = api.post("/users", json={"name": "Ada", "email": unique_email()}).json()["id"]
    response = api.delete(f"/users/{user}/hobbies/{segment}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "path.hobby"


@pytest.mark.parametrize(("field", "value"), [("name", "\ud800"), ("name", "Ada\x00Lovelace")])
def test_forbidden_characters_in_json_text_are_422_not_500(
    api: httpx.Client, field: str, value: str
) -> None:
    body = json.dumps({"name": "Ada", "email": unique_email(), field: value})
    response = api.post("/users", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]
