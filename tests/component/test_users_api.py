"""The users endpoints, on the embedded store and on PostgreSQL."""

from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from eventlog.envelope import partition_of
from eventlog.position_tokens import parse_token
from tests.support.api import assert_problem, register, store_state, unique_email


def test_register_answers_id_version_position_and_the_profile_can_be_read(
    client: TestClient,
) -> None:
    email = unique_email("ada")
    response = client.post("/users", json={"name": "  Ada  ", "email": email})

    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    token = parse_token(body["position"])
    assert token.context == "users" and token.value >= 1
    assert token.partition == partition_of(UUID(body["id"]))
    assert response.headers["Location"] == f"/users/{body['id']}"
    assert response.headers["ETag"] == '"1"'

    profile = client.get(f"/users/{body['id']}")
    assert profile.status_code == 200
    assert profile.headers["ETag"] == '"1"'
    state = profile.json()
    assert (state["name"], state["email"], state["active"]) == ("Ada", email, True)
    assert state["hobbies"] == [] and state["city"] is None


def test_every_user_command_changes_the_profile_and_advances_version_and_position(
    client: TestClient,
) -> None:
    user = register(client)
    new_email = unique_email("new")
    steps = [
        ("put", f"/users/{user}/name", {"name": "Grace Hopper"}),
        ("put", f"/users/{user}/email", {"email": new_email}),
        ("post", f"/users/{user}/hobbies", {"hobby": "Chess"}),
        ("post", f"/users/{user}/hobbies", {"hobby": "sailing"}),
        ("delete", f"/users/{user}/hobbies/chess", None),
        ("put", f"/users/{user}/location", {"city": "Lyon", "country": "fr"}),
        ("post", f"/users/{user}/deactivate", None),
        ("post", f"/users/{user}/reactivate", None),
    ]
    last_position = 0
    for expected_version, (method, path, body) in enumerate(steps, start=2):
        response = client.request(method, path, json=body)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["version"] == expected_version
        position = parse_token(response.json()["position"]).value
        assert position > last_position
        last_position = position

    state = client.get(f"/users/{user}").json()
    assert state["name"] == "Grace Hopper"
    assert state["email"] == new_email
    assert state["hobbies"] == ["sailing"]
    assert (state["city"], state["country"]) == ("Lyon", "FR")
    assert state["active"] is True
    assert state["version"] == len(steps) + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "email": "a@example.com"}, "body.name"),
        ({"name": "x" * 101, "email": "a@example.com"}, "body.name"),
        ({"name": "Ada", "email": "not-an-address"}, "body.email"),
        ({"name": "Ada"}, "body.email"),
        ({"name": "Ada", "email": "a@example.com", "admin": True}, "body.admin"),
        ({"name": 7, "email": "a@example.com"}, "body.name"),
    ],
)
def test_malformed_registration_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    before = store_state(client)
    assert_problem(client.post("/users", json=body), 422, field)
    assert store_state(client) == before


@pytest.mark.parametrize(
    ("method", "suffix", "body", "field"),
    [
        ("put", "name", {"name": "   "}, "body.name"),
        ("put", "email", {"email": "nope@"}, "body.email"),
        ("post", "hobbies", {"hobby": "h" * 41}, "body.hobby"),
        ("put", "location", {"city": "Paris", "country": "ZZ"}, "body.country"),
        ("put", "location", {"city": "", "country": "FR"}, "body.city"),
        ("delete", "hobbies/" + "h" * 41, None, "path.hobby"),
    ],
)
def test_malformed_user_commands_are_422_and_write_nothing(
    client: TestClient, method: str, suffix: str, body: object, field: str
) -> None:
    user = register(client)
    before = store_state(client)
    assert_problem(client.request(method, f"/users/{user}/{suffix}", json=body), 422, field)
    assert store_state(client) == before


def test_a_malformed_user_id_is_422_and_an_unknown_one_404(client: TestClient) -> None:
    assert_problem(client.get("/users/not-a-uuid"), 422, "path.user_id")
    missing = "00000000-0000-4000-8000-000000000000"
    before = store_state(client)
    assert_problem(client.get(f"/users/{missing}"), 404, missing)
    for method, suffix, body in [
        ("put", "name", {"name": "X"}),
        ("put", "email", {"email": unique_email()}),
        ("post", "hobbies", {"hobby": "chess"}),
        ("delete", "hobbies/chess", None),
        ("put", "location", {"city": "Oslo", "country": "NO"}),
        ("post", "deactivate", None),
        ("post", "reactivate", None),
    ]:
        response = client.request(method, f"/users/{missing}/{suffix}", json=body)
        assert_problem(response, 404, "no UserProfile")
    assert store_state(client) == before


def test_domain_rules_are_409_with_the_rule_in_the_message(client: TestClient) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/hobbies", json={"hobby": "Chess"}).status_code == 200
    before = store_state(client)

    duplicate = client.post(f"/users/{user}/hobbies", json={"hobby": "chess"})
    assert_problem(duplicate, 409, "already in the profile")
    assert_problem(client.delete(f"/users/{user}/hobbies/golf"), 409, "not in the profile")
    assert_problem(client.post(f"/users/{user}/reactivate"), 409, "already active")
    assert store_state(client) == before


def test_a_profile_holds_at_most_twenty_hobbies(client: TestClient) -> None:
    user = register(client)
    for number in range(20):
        response = client.post(f"/users/{user}/hobbies", json={"hobby": f"hobby {number}"})
        assert response.status_code == 200
    assert_problem(client.post(f"/users/{user}/hobbies", json={"hobby": "one more"}), 409, "20")
    assert len(client.get(f"/users/{user}").json()["hobbies"]) == 20


def test_a_deactivated_profile_accepts_nothing_but_reactivation(client: TestClient) -> None:
    user = register(client)
    assert client.post(f"/users/{user}/deactivate").status_code == 200
    before = store_state(client)
    for method, suffix, body in [
        ("put", "name", {"name": "X"}),
        ("put", "email", {"email": unique_email()}),
        ("post", "hobbies", {"hobby": "chess"}),
        ("put", "location", {"city": "Oslo", "country": "NO"}),
    ]:
        response = client.request(method, f"/users/{user}/{suffix}", json=body)
        assert_problem(response, 409, "deactivated")
    assert_problem(client.post(f"/users/{user}/deactivate"), 409, "already deactivated")
    assert store_state(client) == before
    assert client.post(f"/users/{user}/reactivate").status_code == 200
    assert client.put(f"/users/{user}/name", json={"name": "Back"}).status_code == 200


def test_email_addresses_are_unique_ignoring_case(client: TestClient) -> None:
    email = unique_email("Taken")
    register(client, email=email)
    before = store_state(client)

    again = client.post("/users", json={"name": "Copy", "email": email.upper()})
    assert_problem(again, 409, "already in use")

    other = register(client)
    assert_problem(client.put(f"/users/{other}/email", json={"email": email}), 409, "in use")
    assert store_state(client)[0] == before[0] + 1  # only the second registration


def test_an_address_given_up_by_one_user_can_be_taken_by_another(client: TestClient) -> None:
    first_email, second_email = unique_email("first"), unique_email("second")
    first = register(client, email=first_email)
    assert client.put(f"/users/{first}/email", json={"email": second_email}).status_code == 200

    assert client.post("/users", json={"name": "B", "email": first_email}).status_code == 201
    assert_problem(client.post("/users", json={"name": "C", "email": second_email}), 409)


def test_changing_email_to_its_own_address_in_other_case_keeps_the_claim(
    client: TestClient,
) -> None:
    email = unique_email("case")
    user = register(client, email=email)
    local, domain = email.split("@")
    response = client.put(f"/users/{user}/email", json={"email": f"{local.upper()}@{domain}"})
    assert response.status_code == 200
    assert_problem(client.post("/users", json={"name": "D", "email": email}), 409)
