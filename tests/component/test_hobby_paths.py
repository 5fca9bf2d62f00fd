"""Every hobby a profile accepts can be removed through its path, in both modes.

The hobby travels percent-encoded in the last path segments; the server decodes it once before
routing. (Starlette's TestClient decodes a second time, so values holding `%XX` themselves are
covered by tests/e2e/test_write_api_paths.py, against a real server.)
"""

from urllib.parse import quote
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from domain.service import CommandContext
from domain.users.profile import UserProfile
from tests.support.api import assert_problem, register, services, store_state


def hobby_path(user: str, hobby: str) -> str:
    """`hobby` fully encoded: dots too, or clients would resolve `.` and `..` away."""
    return f"/users/{user}/hobbies/" + quote(hobby, safe="").replace(".", "%2E")


EDGE_HOBBIES = [
    "a/b",
    "/",
    "//",
    "a/",
    "a?b",
    "a#b",
    "a+b",
    "100%",
    "Ünï ☃",
    "x" * 40,
    "...",
    ". .",
]


@pytest.mark.parametrize("hobby", EDGE_HOBBIES)
def test_a_hobby_added_can_be_removed_by_its_encoded_name(client: TestClient, hobby: str) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/hobbies", json={"hobby": hobby}).status_code == 200
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "kept"}).status_code == 200

    removed = client.delete(hobby_path(user, hobby), follow_redirects=False)

    assert removed.status_code == 200, removed.text
    assert removed.json()["version"] == 4
    assert client.get(f"/users/{user}").json()["hobbies"] == ["kept"]


@pytest.mark.parametrize("hobby", [".", "..", " .. ", "\u3000."])
def test_a_dot_segment_is_refused_as_a_hobby(client: TestClient, hobby: str) -> None:
    """No URL path can name `.` or `..` (RFC 3986 removes them, `%2E` is `.`): a hobby so
    named could be added, never removed through the gateway."""
    user = register(client)
    before = store_state(client)

    problem = assert_problem(
        client.post(f"/users/{user}/hobbies", json={"hobby": hobby}), 422, "body.hobby"
    )

    assert "URL path" in problem["errors"][0]["message"]
    assert store_state(client) == before
    assert client.get(f"/users/{user}").json()["hobbies"] == []


@pytest.mark.parametrize(
    ("hobby", "segment"), [(".", "%2E"), ("..", "%2E%2E"), ("..", "%20%2E%2E"), (".", "%2E%20")]
)
def test_a_dot_segment_hobby_stored_before_the_rule_is_still_removed(
    client: TestClient, hobby: str, segment: str
) -> None:
    """Directly at the write service by `%2E`/`%2E%2E`; through the gateway, which removes dot
    segments, with a space beside it (trimmed, as in any removal)."""
    user = register(client)
    services(client).users.update(
        CommandContext(),
        UserProfile,
        UUID(user),
        lambda profile: profile.trigger_event(UserProfile.HobbyAdded, hobby=hobby),
    )
    assert client.get(f"/users/{user}").json()["hobbies"] == [hobby]

    assert client.delete(f"/users/{user}/hobbies/{segment}").status_code == 200
    assert client.get(f"/users/{user}").json()["hobbies"] == []


@pytest.mark.parametrize("spelling", [" lead ", "LEAD", "\u3000Lead"])
def test_removal_matches_the_trimmed_hobby_in_any_case(client: TestClient, spelling: str) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/hobbies", json={"hobby": " lead "}).status_code == 200
    assert client.get(f"/users/{user}").json()["hobbies"] == ["lead"]

    assert client.delete(hobby_path(user, spelling)).status_code == 200
    assert client.get(f"/users/{user}").json()["hobbies"] == []


def test_a_literal_slash_in_the_path_also_names_the_hobby(client: TestClient) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "a/b"}).status_code == 200
    assert client.delete(f"/users/{user}/hobbies/a/b").status_code == 200


@pytest.mark.parametrize("segment", ["", "%20%20", "x" * 41])
def test_a_hobby_out_of_bounds_in_the_path_is_422(client: TestClient, segment: str) -> None:
    user = register(client)
    before = store_state(client)
    assert_problem(client.delete(f"/users/{user}/hobbies/{segment}"), 422, "path.hobby")
    assert store_state(client) == before


def test_a_path_that_is_not_percent_encoded_utf_8_is_422(client: TestClient) -> None:
    """The server decodes `%FF` leniently, to U+FFFD: the path would name `a\ufffdb`."""
    user = register(client)
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "a\ufffdb"}).status_code == 200
    before = store_state(client)

    problem = assert_problem(client.delete(f"/users/{user}/hobbies/a%FFb"), 422, "path.hobby")

    assert "UTF-8" in problem["errors"][0]["message"]
    assert store_state(client) == before
    assert client.delete(hobby_path(user, "a\ufffdb")).status_code == 200  # %EF%BF%BD
