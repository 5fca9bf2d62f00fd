"""Every parameter of every read endpoint is parsed strictly, on both storage modes.

A bad value is a 422 problem naming the parameter, before any store call and before any
read-your-writes wait: never a 500 (PostgreSQL refuses NUL in text, which once surfaced as one),
never a value read loosely. Urls are written out by hand so that the bytes on the wire are
exactly the ones under test.
"""

import logging
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from readmodels.catalog import USERS_DIRECTORY
from tests.support.api import assert_problem
from tests.support.read_models import Backend

USER = uuid.UUID("3f2c8a1e-0000-4000-8000-000000000001")

QUERY_PARAMETERS = [
    ("/users", "name_prefix"),
    ("/users", "city"),
    ("/users", "hobby"),
    ("/users", "country"),
    ("/users", "cursor"),
    ("/users", "limit"),
    ("/users", "position"),
    ("/users", "wait"),
    (f"/users/{USER}", "position"),
    (f"/users/{USER}/stats", "wait"),
    ("/orders", "user_id"),
    ("/orders", "status"),
    ("/orders", "placed_from"),
    ("/orders", "placed_to"),
    ("/orders", "cursor"),
    ("/orders", "limit"),
    (f"/orders/{USER}", "position"),
    ("/sales/daily", "currency"),
    ("/sales/daily", "from"),
    ("/sales/daily", "to"),
    ("/sales/daily", "cursor"),
    ("/sales/daily", "limit"),
    ("/leaderboards/EUR/top-spenders", "limit"),
    ("/leaderboards/EUR/top-spenders", "position"),
]
"""(endpoint, one of its query parameters): every query parameter of every read endpoint."""

UNUSABLE_TEXT = {
    "NUL": "%00",
    "unit separator": "%1F",
    "DEL": "%7F",
    "C1 control": "%C2%85",
    "surrogate as UTF-8": "%ED%A0%80",
    "invalid UTF-8": "%FF",
    "non-character": "%EF%BF%BF",
    "truncated UTF-8": "a%C3",
    "overlong": "x" * 5000,
    "empty": "",
}
"""Values no parameter accepts, percent-encoded as a client sends them."""


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The test fails if anything logged an error (a 500 logs its traceback)."""
    with caplog.at_level(logging.ERROR):
        yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def assert_refused(client: TestClient, url: str, field: str) -> None:
    body = assert_problem(client.get(url), 422, field)
    assert [error["field"] for error in body["errors"]] == [field], body


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(("endpoint", "name"), QUERY_PARAMETERS)
@pytest.mark.parametrize("value", UNUSABLE_TEXT.values(), ids=UNUSABLE_TEXT.keys())
def test_unusable_text_in_any_query_parameter_is_422_naming_it(
    client: TestClient, endpoint: str, name: str, value: str
) -> None:
    assert_refused(client, f"{endpoint}?{name}={value}", f"query.{name}")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    "path",
    [
        "/users/{}",
        "/users/{}/stats",
        "/orders/{}",
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        "%00",
        "%FF",
        "%ED%A0%80",
        "x" * 5000,
        USER.hex,  # no hyphens
        "{" + str(USER) + "}",
        f"urn:uuid:{USER}",
        f"%20{USER}",
        str(USER)[:-1] + "%D9%A3",  # an Arabic-Indic digit
    ],
)
def test_an_id_in_a_path_must_be_a_canonical_uuid(
    client: TestClient, path: str, value: str
) -> None:
    field = "path.order_id" if path.startswith("/orders") else "path.user_id"
    assert_refused(client, path.format(value), field)


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("value", ["%00", "%FF", "%ED%A0%80", "%7F", "x" * 5000, "E%1FUR"])
def test_a_currency_in_a_path_is_422_naming_it(client: TestClient, value: str) -> None:
    assert_refused(client, f"/leaderboards/{value}/top-spenders", "path.currency")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "1e3"),
        ("limit", "1.0"),
        ("limit", "%20"),
        ("limit", "%205"),
        ("limit", "+5"),
        ("limit", "1_0"),
        ("limit", "%D9%A3"),  # Arabic-Indic 3
        ("limit", "9" * 30),
        ("limit", "0"),
        ("limit", "201"),
        ("wait", "nan"),
        ("wait", "inf"),
        ("wait", "Infinity"),
        ("wait", "-1"),
        ("wait", "-0"),
        ("wait", "1e1"),
        ("wait", "0x1"),
        ("wait", "1_0"),
        ("wait", "%201"),
        ("wait", "10.5"),  # over STRATA_READ_WAIT_MAX_SECONDS
        ("position", "users:1%0A"),
        ("position", "users:%D9%A3"),
        ("position", "users:1:2"),
        ("position", "%20users:1"),
        ("position", "users:1e3"),
        ("position", "users:" + "9" * 19),
        ("position", "billing:3"),
        ("country", "XX"),
        ("country", "F"),
    ],
)
def test_numbers_and_tokens_are_read_strictly(client: TestClient, name: str, value: str) -> None:
    assert_refused(client, f"/users?{name}={value}", f"query.{name}")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("user_id", USER.hex),
        ("user_id", f"urn:uuid:{USER}"),
        ("status", "PLACED"),
        ("status", "%20placed"),
        ("placed_from", "1700000000"),  # a Unix time
        ("placed_from", "2026-01-05"),
        ("placed_from", "2026-01-05T10:00:00"),  # no offset
        ("placed_from", "2026-01-05T10:00:00+01:00"),  # an unencoded '+' is a space
        ("placed_from", "2026-01-05%2010:00:00Z"),
        ("placed_from", "2026-02-30T10:00:00Z"),
        ("placed_to", "2026-01-05T10:00:00%2B24:00"),
        ("placed_from", "0001-01-01T00:00:00%2B01:00"),  # before year 1 in UTC
        ("placed_to", "9999-12-31T23:59:59-01:00"),  # after year 9999 in UTC
    ],
)
def test_order_filters_are_read_strictly(client: TestClient, name: str, value: str) -> None:
    assert_refused(client, f"/orders?{name}={value}", f"query.{name}")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from", "2026-1-5"),
        ("from", "20260105"),
        ("from", "2026-01-05T00:00"),
        ("from", "1700000000"),
        ("to", "2026-02-30"),
        ("to", "%D9%A2026-01-05"),
    ],
)
def test_days_are_iso_dates(client: TestClient, name: str, value: str) -> None:
    assert_refused(client, f"/sales/daily?{name}={value}", f"query.{name}")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    "cursor",
    ["garbage", "a.b.c", "eyJ4IjoxfQ.AAAA", "eyJ4IjoxfQ%00.AAAA", "e30.%FF", "A" * 1001 + ".A"],
)
def test_a_cursor_not_made_by_the_endpoint_is_422(client: TestClient, cursor: str) -> None:
    assert_refused(client, f"/orders?cursor={cursor}", "query.cursor")


def test_a_cursor_with_characters_the_decoder_would_skip_is_refused(
    client: TestClient, backend: Backend
) -> None:
    for i in range(3):
        backend.write.directory_entry(uuid.uuid4(), f"User {i}")
    cursor = client.get("/users?limit=1").json()["next_cursor"]
    body, mac = cursor.split(".")

    assert client.get(f"/users?limit=1&cursor={cursor}").status_code == 200
    assert_refused(client, f"/users?limit=1&cursor={body}.{mac}!", "query.cursor")
    assert_refused(client, f"/users?limit=1&cursor={body}=.{mac}", "query.cursor")


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(("endpoint", "name"), QUERY_PARAMETERS)
def test_a_parameter_given_twice_is_422_naming_it(
    client: TestClient, endpoint: str, name: str
) -> None:
    body = assert_problem(client.get(f"{endpoint}?{name}=1&{name}=1"), 422, f"query.{name}")
    assert body["errors"] == [
        {"field": f"query.{name}", "message": "was given 2 times; give it once"}
    ]


def test_unknown_parameters_are_ignored_whatever_they_hold(client: TestClient) -> None:
    response = client.get("/users?page=%FF&page=2&nul=%00&limit=5")

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


def test_every_bad_parameter_is_named_at_once(client: TestClient) -> None:
    body = assert_problem(client.get("/users?limit=abc&hobby=%00&country=XX&city="), 422)

    assert sorted(error["field"] for error in body["errors"]) == [
        "query.city",
        "query.country",
        "query.hobby",
        "query.limit",
    ]


def test_a_read_with_a_bad_parameter_does_not_wait_for_its_position(
    client: TestClient, backend: Backend
) -> None:
    backend.write.checkpoint(USERS_DIRECTORY, "users", 1)

    assert_refused(client, "/users?position=users:999&wait=5&limit=0", "query.limit")
    assert_refused(client, "/users?position=users:999&wait=5&cursor=x", "query.cursor")

    assert "strata_read_waits_total{" not in client.get("/metrics").text


@pytest.mark.parametrize("value", ["x" * 150, "caf\u00e9"])
def test_a_malformed_correlation_id_is_400(client: TestClient, value: str) -> None:
    response = client.get("/users", headers={"X-Correlation-Id": value.encode()})
    assert_problem(response, 400, "X-Correlation-Id")
    assert client.get("/users", headers={"X-Correlation-Id": "ok-1"}).status_code == 200
