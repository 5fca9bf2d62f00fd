"""Bad input through the write API, the same cases in both modes (embedded SQLite, PostgreSQL).

Each one must be a 4xx problem+json naming the field, and append nothing to either store.
Bodies are sent as ASCII JSON text, so lone surrogates (`"\\ud800"`) and raw number spellings
(`1e3`) reach the server exactly as a client could send them.
"""

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.api import (
    add_line,
    assert_problem,
    create_order,
    register,
    store_state,
    unique_email,
)

# Refused by the text rule; \x1f, \x85 (NEXT LINE), U+2028 and U+2029 (line and paragraph
# separators) are also whitespace to str.strip; U+202E reverses how the text after it is shown.
FORBIDDEN = [
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\ud800",
    "\ufffe",
    "\U0010ffff",
]
UUID = "2e31a84a-2ade-4076-83c6-62ab586bccdb"


def send(client: TestClient, method: str, path: str, body: str | None = None) -> httpx.Response:
    """Send `body`, already JSON text, as it is."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response: httpx.Response = client.request(method, path, content=body, headers=headers)
    return response


def send_json(client: TestClient, method: str, path: str, body: Any) -> httpx.Response:
    return send(client, method, path, json.dumps(body))  # ASCII: "\ud800" stays escaped


def assert_refused(
    client: TestClient, response: httpx.Response, before: object, field: str, *more: str
) -> None:
    """A 422 with an error on `field` whose message holds `more`, and no store changed."""
    body = assert_problem(response, 422, field)
    messages = " ".join(e["message"] for e in body.get("errors", []) if e["field"] == field)
    assert messages, f"{field} not among {body.get('errors')}"
    for fragment in more:
        assert fragment in messages
    assert store_state(client) == before


@pytest.fixture
def aggregates(client: TestClient) -> dict[str, str]:
    """A user and their draft order with one line (sku A-1)."""
    user = register(client)
    order = create_order(client, user)
    add_line(client, order, "A-1", 1, "1.00")
    return {"user": user, "order": order}


TextField = tuple[str, str, dict[str, Any], str]
"""(method, path, a valid body, the text field to spoil)."""


TEXT_FIELDS: list[TextField] = [
    ("post", "/users", {"name": "Ada", "email": "ada@example.com"}, "name"),
    ("post", "/users", {"name": "Ada", "email": "ada@example.com"}, "email"),
    ("put", "/users/{user}/name", {"name": "Grace"}, "name"),
    ("put", "/users/{user}/email", {"email": "grace@example.com"}, "email"),
    ("post", "/users/{user}/hobbies", {"hobby": "chess"}, "hobby"),
    ("put", "/users/{user}/location", {"city": "Lyon", "country": "FR"}, "city"),
    ("put", "/users/{user}/location", {"city": "Lyon", "country": "FR"}, "country"),
    ("post", "/orders", {"user_id": "{user}", "currency": "EUR"}, "currency"),
    ("post", "/orders/{order}/lines", {"sku": "B-2", "quantity": 1, "unit_price": "2.00"}, "sku"),
    (
        "post",
        "/orders/{order}/lines",
        {"sku": "B-2", "quantity": 1, "unit_price": "2.00"},
        "unit_price",
    ),
    ("post", "/orders/{order}/cancel", {"reason": "changed my mind"}, "reason"),
]


def filled(
    path: str, valid: dict[str, Any], aggregates: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """The path and body with the aggregates' ids, and an email nobody has taken."""
    body = {k: v.format(**aggregates) if isinstance(v, str) else v for k, v in valid.items()}
    if "email" in body:
        body["email"] = unique_email()
    return path.format(**aggregates), body


def spoiled(text: str, char: str) -> list[str]:
    """`char` inside the value and at its end, where stripping would have removed some."""
    middle = len(text) // 2
    return [text[:middle] + char + text[middle:], text + char]


def assert_each_refused(
    client: TestClient,
    aggregates: dict[str, str],
    text_field: TextField,
    values: list[str],
    fragment: str,
) -> None:
    """Each value in the field, the rest of the body valid: a 422 naming the field, nothing
    stored."""
    method, path, valid, field = text_field
    path, valid = filled(path, valid, aggregates)
    before = store_state(client)
    for value in values:
        response = send_json(client, method, path, {**valid, field: value})
        assert_refused(client, response, before, f"body.{field}", fragment)


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("text_field", TEXT_FIELDS)
def test_a_forbidden_character_in_any_text_field_is_422_naming_it(
    client: TestClient, aggregates: dict[str, str], char: str, text_field: TextField
) -> None:
    values = spoiled(text_field[2][text_field[3]], char)
    assert_each_refused(client, aggregates, text_field, values, f"U+{ord(char):04X}")


TRIMMED_TEXT_FIELDS = [
    entry for entry in TEXT_FIELDS if entry[3] in ("name", "hobby", "city", "reason")
]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        *((t, "must hold a visible character") for t in ("\u200b", " \u200b\u2060 ", "\ufeff")),
        *((t, "must hold a visible character") for t in ("\u3164", "\u034f\ufe0f")),
        *((t, "must hold a base character") for t in ("\u0301", "\u0301\u0308", " \u0301 \u0301 ")),
    ],
    ids=ascii,
)
@pytest.mark.parametrize("text_field", TRIMMED_TEXT_FIELDS)
def test_text_that_shows_nothing_or_only_combining_marks_is_422(
    client: TestClient, aggregates: dict[str, str], text: str, fragment: str, text_field: TextField
) -> None:
    assert_each_refused(client, aggregates, text_field, [text], fragment)


# The forbidden characters as a path carries them: percent-encoded UTF-8 (a lone surrogate has
# no UTF-8 form; servers decode its bytes to U+FFFD, which matches nothing).
@pytest.mark.parametrize("char", [c for c in FORBIDDEN if c != "\ud800"], ids=ascii)
@pytest.mark.parametrize(
    ("path", "field"),
    [("/users/{user}/hobbies/chess{char}", "hobby"), ("/orders/{order}/lines/A-1{char}", "sku")],
)
def test_a_forbidden_character_in_a_path_value_is_422_naming_it(
    client: TestClient, aggregates: dict[str, str], char: str, path: str, field: str
) -> None:
    assert client.post(f"/users/{aggregates['user']}/hobbies", json={"hobby": "chess"})
    before = store_state(client)
    response = client.delete(path.format(**aggregates, char=quote(char)))
    assert_refused(client, response, before, f"path.{field}", f"U+{ord(char):04X}")


@pytest.mark.parametrize(
    "price",
    [
        '"1_000.00"',
        '"\u0661\u0662\u0663"',  # Arabic-Indic digits
        '"\U0001d7d9.00"',  # mathematical double-struck one
        '"\uff11.00"',  # fullwidth one
        '"1e2"',
        '"1E2"',
        "100",  # a JSON number
        "1.5",
        '"+1.00"',
        '"-0"',
        '"-1.00"',
        '" 1.00"',
        '"1.00 "',
        '"01.00"',
        '".5"',
        '"1."',
        '"1.001"',
        '""',
        '"NaN"',
        '"Infinity"',
        '"0x10"',
        '"1,00"',
        '"1000000000000"',  # 13 integer digits: more than any price
        "null",
        "true",
    ],
)
def test_a_unit_price_is_only_a_string_of_ascii_digits_with_two_decimals(
    client: TestClient, aggregates: dict[str, str], price: str
) -> None:
    before = store_state(client)
    body = f'{{"sku": "B-2", "quantity": 1, "unit_price": {price}}}'
    response = send(client, "post", f"/orders/{aggregates['order']}/lines", body)
    assert_refused(client, response, before, "body.unit_price")


@pytest.mark.parametrize(
    "quantity",
    ["true", '"1"', "1e3", "1E0", "1.0", "1.5", "0", "1001", "-1", "null", "1" + "0" * 30],
)
def test_a_quantity_is_only_a_json_integer_in_range(
    client: TestClient, aggregates: dict[str, str], quantity: str
) -> None:
    before = store_state(client)
    body = f'{{"sku": "B-2", "quantity": {quantity}, "unit_price": "1.00"}}'
    response = send(client, "post", f"/orders/{aggregates['order']}/lines", body)
    assert_refused(client, response, before, "body.quantity")


@pytest.mark.parametrize(
    ("price", "quantity", "stored", "total"),
    [
        ('"0"', "1", "0.00", "0.00"),
        ('"12.5"', "2", "12.50", "25.00"),
        ('"999999999999.99"', "1", "999999999999.99", "999999999999.99"),  # the most a total is
        ('"999999999.99"', "1000", "999999999.99", "999999999990.00"),
    ],
)
def test_the_edges_of_prices_and_quantities_are_accepted(
    client: TestClient,
    aggregates: dict[str, str],
    price: str,
    quantity: str,
    stored: str,
    total: str,
) -> None:
    order = aggregates["order"]
    assert client.delete(f"/orders/{order}/lines/A-1").status_code == 200
    body = f'{{"sku": "B-2", "quantity": {quantity}, "unit_price": {price}}}'
    assert send(client, "post", f"/orders/{order}/lines", body).status_code == 200
    state = client.get(f"/orders/{order}").json()
    assert (state["lines"][0]["unit_price"], state["total"]) == (stored, total)


NON_CANONICAL_IDS = [
    UUID.replace("-", ""),
    "{" + UUID + "}",
    "urn:uuid:" + UUID,
    " " + UUID,
    UUID + " ",
    UUID[:-1],
    UUID.replace("-", "_"),
    "2e31a84a-2ade-4076-83c6-62ab586bccd\u0661",
]


@pytest.mark.parametrize("user_id", [*NON_CANONICAL_IDS, 123, None])
def test_a_user_id_in_a_body_is_only_a_hyphenated_uuid_string(
    client: TestClient, user_id: object
) -> None:
    before = store_state(client)
    response = send_json(client, "post", "/orders", {"user_id": user_id, "currency": "EUR"})
    assert_refused(client, response, before, "body.user_id")


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_a_hyphenated_uuid_is_accepted_in_either_case(
    client: TestClient, aggregates: dict[str, str], spelling: Any
) -> None:
    user = spelling(aggregates["user"])
    response = send_json(client, "post", "/orders", {"user_id": user, "currency": "EUR"})
    assert response.status_code == 201, response.text
    assert client.get(f"/users/{user}").status_code == 200


@pytest.mark.parametrize("spelling", NON_CANONICAL_IDS, ids=ascii)
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", "/users/{id}", "user_id"),
        ("post", "/users/{id}/deactivate", "user_id"),
        ("delete", "/users/{id}/hobbies/chess", "user_id"),
        ("get", "/orders/{id}", "order_id"),
        ("post", "/orders/{id}/place", "order_id"),
    ],
)
def test_a_path_id_is_only_a_hyphenated_uuid(
    client: TestClient, spelling: str, method: str, path: str, field: str
) -> None:
    before = store_state(client)
    response = client.request(method, path.format(id=quote(spelling, safe="")))
    assert_refused(client, response, before, f"path.{field}")


@pytest.mark.parametrize(
    "as_of",
    ["-\u0661\u0662s", "\uff12\uff10\uff12\uff16-11-26", " now", "now ", "-1h\t", "now\x00", "x"],
)
@pytest.mark.parametrize("path", ["/users/{user}", "/orders/{order}"])
def test_as_of_is_printable_ascii_naming_a_time(
    client: TestClient, aggregates: dict[str, str], as_of: str, path: str
) -> None:
    response = client.get(path.format(**aggregates), params={"as_of": as_of})
    assert_refused(client, response, store_state(client), "query.as_of")


@pytest.mark.parametrize("as_of", ["now", "-1h30m", "2999-01-01T00:00:00Z", "2999-01-01 10:42"])
def test_as_of_in_each_documented_form_is_accepted(
    client: TestClient, aggregates: dict[str, str], as_of: str
) -> None:
    response = client.get(f"/users/{aggregates['user']}", params={"as_of": as_of})
    assert response.status_code in (200, 404), response.text  # 404: before it existed


def test_a_lone_surrogate_as_a_json_key_is_422_not_500(client: TestClient) -> None:
    before = store_state(client)
    body = '{"name": "Ada", "email": "ada@example.com", "\\ud800": 1}'
    assert_problem(send(client, "post", "/users", body), 422, "body")
    assert store_state(client) == before


@pytest.mark.parametrize("unknown", [21, 5_500])
def test_a_validation_problem_lists_the_first_20_errors_and_counts_the_rest(
    client: TestClient, unknown: int
) -> None:
    """A 54 KB body of 5,500 unknown members is not answered with a 427 KB problem."""
    before = store_state(client)
    members = {f"x{n}": 1 for n in range(unknown)}
    body = json.dumps({"name": "Ada", "email": unique_email(), **members})
    response = send(client, "POST", "/users", body)
    problem = assert_problem(response, 422, "body.x0", "body.x19", f"and {unknown - 20} more")
    assert [error["field"] for error in problem["errors"]] == [f"body.x{n}" for n in range(20)]
    assert problem["errors_omitted"] == unknown - 20
    assert len(response.content) < 4_000
    assert store_state(client) == before


def test_a_validation_problem_of_20_errors_lists_them_all(client: TestClient) -> None:
    body = json.dumps({"name": "Ada", "email": unique_email(), **{f"x{n}": 1 for n in range(20)}})
    problem = assert_problem(send(client, "POST", "/users", body), 422, "body.x19")
    assert len(problem["errors"]) == 20
    assert "errors_omitted" not in problem and "more" not in problem["detail"]


@pytest.mark.parametrize("escape", ["%zz", "%2", "%", "a%g1", "%%41"])
def test_a_malformed_percent_escape_in_a_path_is_422_on_its_parameter(
    client: TestClient, escape: str
) -> None:
    """`%zz` is no escape: the server would keep it as it is and look for the hobby `%zz`."""
    user = register(client)
    hobby = escape.replace("%%41", "%A")  # as a lenient decoder reads the path
    assert send_json(client, "POST", f"/users/{user}/hobbies", {"hobby": hobby}).status_code == 200
    before = store_state(client)
    response = client.delete(f"/users/{user}/hobbies/{escape}")
    assert_refused(client, response, before, "path.hobby", "two hex digits")
    assert client.delete(f"/users/{user}/hobbies/{quote(hobby, safe='')}").status_code == 200
