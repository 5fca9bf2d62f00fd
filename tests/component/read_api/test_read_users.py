"""GET /users/{id}, /users/{id}/stats and /users (the directory), on both storage modes."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from readmodels.catalog import USER_PROFILES, USER_STATS, USERS_DIRECTORY
from tests.component.read_api.pages import ids, walk
from tests.support.api import assert_problem
from tests.support.read_models import T0, Backend


def test_profile_is_the_document_with_iso_utc_times(client: TestClient, backend: Backend) -> None:
    user = uuid.uuid4()
    backend.write.profile(
        user,
        "Ada Lovelace",
        "ada@example.com",
        hobbies=["chess", "Sailing"],
        city="London",
        country="GB",
        version=4,
        updated_at=T0 + timedelta(hours=1, microseconds=5),
    )
    backend.write.checkpoint(USER_PROFILES, "users", 17)

    response = client.get(f"/users/{user}")

    assert response.status_code == 200, response.text
    assert response.headers["X-Read-Position"] == "users:17"
    assert response.json() == {
        "id": str(user),
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "hobbies": ["chess", "Sailing"],
        "city": "London",
        "country": "GB",
        "active": True,
        "version": 4,
        "registered_at": "2026-01-05T09:30:00Z",
        "updated_at": "2026-01-05T10:30:00.000005Z",
    }


def test_a_profile_without_location_has_null_city_and_country(
    client: TestClient, backend: Backend
) -> None:
    user = uuid.uuid4()
    backend.write.profile(user, "Grace", "grace@example.com", active=False)

    body = client.get(f"/users/{user}").json()

    assert (body["city"], body["country"], body["active"], body["hobbies"]) == (
        None,
        None,
        False,
        [],
    )


def test_unknown_user_is_404_and_says_which_position_it_reflects(
    client: TestClient, backend: Backend
) -> None:
    backend.write.checkpoint(USER_PROFILES, "users", 5)
    missing = uuid.uuid4()

    response = client.get(f"/users/{missing}")

    assert_problem(response, 404, str(missing))
    assert response.headers["X-Read-Position"] == "users:5"


@pytest.mark.parametrize("path", ["/users/not-a-uuid", "/users/123/stats"])
def test_a_malformed_user_id_is_422_naming_it(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 422, "path.user_id")


def test_stats_count_orders_and_money_per_currency(client: TestClient, backend: Backend) -> None:
    """Each amount with its currency's minor units; HRK, gone from ISO 4217, with 2."""
    user = uuid.uuid4()
    backend.write.profile(user, "Ada", "ada@example.com")
    spent = {"EUR": 1230, "USD": 5, "JPY": 100000, "BHD": 1, "HRK": 0}
    backend.write.stats(user, orders=3, spent=spent)
    backend.write.checkpoint(USER_PROFILES, "users", 2)
    backend.write.checkpoint(USER_STATS, "orders", 9)

    response = client.get(f"/users/{user}/stats")

    assert response.status_code == 200, response.text
    assert response.headers["X-Read-Position"] == "users:2,orders:9"
    assert response.json() == {
        "user_id": str(user),
        "orders": 3,
        "spent": {"EUR": "12.30", "JPY": "1000", "USD": "0.05", "BHD": "0.010", "HRK": "0.00"},
    }


def test_stats_of_a_known_user_without_orders_are_zero(
    client: TestClient, backend: Backend
) -> None:
    user = uuid.uuid4()
    backend.write.profile(user, "Ada", "ada@example.com")

    assert client.get(f"/users/{user}/stats").json() == {
        "user_id": str(user),
        "orders": 0,
        "spent": {},
    }


def test_stats_of_orders_whose_profile_is_not_projected_yet_are_served(
    client: TestClient, backend: Backend
) -> None:
    user = uuid.uuid4()
    backend.write.stats(user, orders=1, spent={})

    assert client.get(f"/users/{user}/stats").json()["orders"] == 1


def test_stats_of_an_unknown_user_are_404(client: TestClient) -> None:
    assert_problem(client.get(f"/users/{uuid.uuid4()}/stats"), 404, "no user")


# -- the directory ---------------------------------------------------------------------------

NAMES = [
    "Ada Lovelace",
    "ada byron",
    "Alan Turing",
    "Barbara Liskov",
    "Édith Piaf",
    "Grace Hopper",
    "grace hopper",  # same name_lower: the id breaks the tie
    "Grace Hopper",
    "Ken Thompson",
    "Al_Khwarizmi",
    "Al%Kindi",
    "Alonzo Church",
    "Zoë",
    "Dennis Ritchie",
    "Donald Knuth",
    "Edsger Dijkstra",
    "Frances Allen",
    "Hedy Lamarr",
    "John Backus",
    "Katherine Johnson",
    "Leslie Lamport",
    "Margaret Hamilton",
    "Niklaus Wirth",
]


def directory(backend: Backend) -> list[dict[str, Any]]:
    """Writes the directory; returns the entries as the API must list them (name, then id)."""
    entries = []
    for i, name in enumerate(NAMES):
        user = uuid.uuid4()
        country, city = [("FR", "Paris"), ("GB", "London"), ("FR", "Lyon")][i % 3]
        hobbies = [["Chess"], ["chess", "Go"], []][i % 3]
        backend.write.directory_entry(
            user, name, city=city, country=country, hobbies=hobbies, version=i + 1
        )
        entries.append(
            {"id": str(user), "name": name, "country": country, "city": city, "hobbies": hobbies}
        )
    backend.write.checkpoint(USERS_DIRECTORY, "users", 40)
    return sorted(entries, key=lambda e: (e["name"].lower(), e["id"]))


@pytest.mark.parametrize("limit", [1, 4, 50])
def test_directory_pages_walk_every_user_once_in_name_order(
    client: TestClient, backend: Backend, limit: int
) -> None:
    expected = directory(backend)

    walked = walk(client, "/users", {"limit": limit})

    assert ids(walked) == ids(expected)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"country": "fr"}, lambda e: e["country"] == "FR"),
        ({"country": "FR", "city": "Lyon"}, lambda e: e["city"] == "Lyon"),
        ({"city": "London"}, lambda e: e["city"] == "London"),
        ({"hobby": "CHESS"}, lambda e: "chess" in [h.lower() for h in e["hobbies"]]),
        ({"hobby": "go", "country": "GB"}, lambda e: "Go" in e["hobbies"]),
        ({"name_prefix": "gRaCe"}, lambda e: e["name"].lower().startswith("grace")),
        ({"name_prefix": "al_"}, lambda e: e["name"].startswith("Al_")),
        ({"name_prefix": "al%"}, lambda e: e["name"].startswith("Al%")),
        ({"name_prefix": "é"}, lambda e: e["name"].startswith("É")),
        ({"name_prefix": "nobody"}, lambda e: False),
    ],
)
def test_directory_filters_walk_exactly_the_matching_users(
    client: TestClient, backend: Backend, params: dict[str, Any], keep: Any
) -> None:
    expected = [e for e in directory(backend) if keep(e)]

    walked = walk(client, "/users", {**params, "limit": 2})

    assert ids(walked) == ids(expected)
    assert all(item["hobbies"] == sorted(item["hobbies"], key=str.lower) for item in walked)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("hobby=%20lead", ["Ada Lovelace", "Adam Smith"]),
        ("hobby=LEAD%20%20", ["Ada Lovelace", "Adam Smith"]),
        ("hobby=%C2%A0Lead%E3%80%80", ["Ada Lovelace", "Adam Smith"]),  # Unicode spaces
        ("city=%20Paris%20", ["Ada Lovelace", "Adam Smith"]),
        ("city=paris", []),  # a city matches exactly
        ("name_prefix=%20%20ADA", ["Ada Lovelace", "Adam Smith"]),
        ("name_prefix=ada%20", ["Ada Lovelace"]),  # trailing space is part of a prefix
        ("country=%20fr%20", ["Ada Lovelace", "Adam Smith"]),
    ],
)
def test_directory_filters_are_normalised_like_the_commands_that_store_the_values(
    client: TestClient, backend: Backend, query: str, expected: list[str]
) -> None:
    # As the commands stored " Ada Lovelace ", city " Paris ", hobbies " lead" and "Lead ".
    backend.write.directory_entry(
        uuid.uuid4(), "Ada Lovelace", city="Paris", country="FR", hobbies=["lead"]
    )
    backend.write.directory_entry(
        uuid.uuid4(), "Adam Smith", city="Paris", country="FR", hobbies=["Lead"]
    )

    response = client.get(f"/users?{query}")

    assert response.status_code == 200, response.text
    assert [entry["name"] for entry in response.json()["items"]] == expected


def test_a_cursor_continues_the_same_filters_however_they_were_spelt(
    client: TestClient, backend: Backend
) -> None:
    for name in ("Ada", "Bea", "Cy"):
        backend.write.directory_entry(uuid.uuid4(), name, hobbies=["lead"])

    first = client.get("/users?hobby=%20LEAD&limit=1").json()
    rest = client.get(f"/users?hobby=lead&limit=5&cursor={first['next_cursor']}")

    assert rest.status_code == 200, rest.text
    assert [e["name"] for e in first["items"] + rest.json()["items"]] == ["Ada", "Bea", "Cy"]


def test_directory_entries_carry_the_listed_fields(client: TestClient, backend: Backend) -> None:
    user = uuid.uuid4()
    backend.write.directory_entry(
        user, "Ada", email="ada@example.com", city="Paris", country="FR", hobbies=["Go", "chess"]
    )
    backend.write.checkpoint(USERS_DIRECTORY, "users", 3)

    response = client.get("/users")

    assert response.headers["X-Read-Position"] == "users:3"
    assert response.json() == {
        "items": [
            {
                "id": str(user),
                "name": "Ada",
                "email": "ada@example.com",
                "city": "Paris",
                "country": "FR",
                "hobbies": ["chess", "Go"],
                "active": True,
                "version": 1,
                "registered_at": "2026-01-05T09:30:00Z",
                "updated_at": "2026-01-05T09:30:00Z",
            }
        ],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"country": "XX"}, "query.country"),
        ({"country": "FRA"}, "query.country"),
        ({"city": ""}, "query.city"),
        ({"hobby": "x" * 41}, "query.hobby"),
        ({"name_prefix": ""}, "query.name_prefix"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"cursor": "a.b"}, "query.cursor"),
        ({"cursor": ""}, "query.cursor"),
    ],
)
def test_directory_rejects_bad_parameters_naming_them(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(client.get("/users", params=params), 422, field)
    assert body["errors"][0]["field"] == field


def test_a_directory_cursor_is_refused_when_altered_or_used_with_other_filters(
    client: TestClient, backend: Backend
) -> None:
    directory(backend)
    cursor = client.get("/users", params={"country": "FR", "limit": 2}).json()["next_cursor"]
    body, mac = cursor.split(".")
    tampered = body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac

    assert client.get("/users", params={"country": "FR", "cursor": cursor}).status_code == 200
    assert_problem(
        client.get("/users", params={"country": "GB", "cursor": cursor}), 422, "query.cursor"
    )
    assert_problem(
        client.get("/users", params={"country": "FR", "cursor": tampered}), 422, "query.cursor"
    )
