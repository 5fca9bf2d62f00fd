"""Optimistic concurrency, retries with Idempotency-Key, and racing writers."""

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from contexts.settings import Settings
from domain.service import CommandService
from domain.users.profile import UserProfile
from tests.support.aggregates import stored_events
from tests.support.api import assert_problem, register, services, store_state, unique_email
from tests.support.auth import IDENTITY, OPERATOR
from write_api.app import create_app


def test_if_match_with_the_current_etag_succeeds_and_a_stale_one_is_412(
    client: TestClient,
) -> None:
    user = register(client)
    etag = client.get(f"/users/{user}").headers["ETag"]
    first = client.put(f"/users/{user}/name", json={"name": "One"}, headers={"If-Match": etag})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'

    before = store_state(client)
    stale = client.put(f"/users/{user}/name", json={"name": "Two"}, headers={"If-Match": etag})
    assert_problem(stale, 412, "version 2, not at version 1")
    assert store_state(client) == before
    assert client.get(f"/users/{user}").json()["name"] == "One"


def test_a_malformed_if_match_is_400(client: TestClient) -> None:
    user = register(client)
    response = client.put(f"/users/{user}/name", json={"name": "X"}, headers={"If-Match": "abc"})
    assert_problem(response, 400, "If-Match")


def test_a_retried_command_returns_the_original_answer_and_appends_nothing(
    client: TestClient,
) -> None:
    key = {"Idempotency-Key": f"register-{uuid.uuid4()}"}
    body = {"name": "Ada", "email": unique_email()}
    first = client.post("/users", json=body, headers=key)
    after_first = store_state(client)
    second = client.post("/users", json=body, headers=key)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert store_state(client) == after_first


def test_a_retry_after_later_changes_still_returns_the_original_version(
    client: TestClient,
) -> None:
    user = register(client)
    key = {"Idempotency-Key": f"hobby-{uuid.uuid4()}"}
    first = client.post(f"/users/{user}/hobbies", json={"hobby": "chess"}, headers=key)
    assert client.put(f"/users/{user}/name", json={"name": "Later"}).status_code == 200
    retry = client.post(f"/users/{user}/hobbies", json={"hobby": "chess"}, headers=key)
    assert retry.status_code == 200
    assert retry.json() == first.json() == {**first.json(), "version": 2}


def test_an_idempotency_key_reused_with_another_body_is_422(client: TestClient) -> None:
    key = {"Idempotency-Key": f"reuse-{uuid.uuid4()}"}
    first = client.post("/users", json={"name": "A", "email": unique_email()}, headers=key)
    assert first.status_code == 201
    before = store_state(client)
    other = client.post("/users", json={"name": "B", "email": unique_email()}, headers=key)
    assert_problem(other, 422, "already used for a different request")
    assert store_state(client) == before


def test_an_idempotency_key_is_the_callers_own(client: TestClient) -> None:
    """Two callers sending one key, each on their own profile, are two commands: neither is
    refused nor answered the other's outcome; each caller's retry replays their own."""
    ada, grace = register(client), register(client, name="Grace Hopper")
    key = f"rename-{uuid.uuid4()}"
    as_ada = {"Idempotency-Key": key, **IDENTITY.user(ada)}
    as_grace = {"Idempotency-Key": key, **IDENTITY.user(grace)}

    first = client.put(f"/users/{ada}/name", json={"name": "Ada K."}, headers=as_ada)
    other = client.put(f"/users/{grace}/name", json={"name": "Grace B."}, headers=as_grace)

    for response, user in ((first, ada), (other, grace)):
        assert response.status_code == 200, response.text
        assert "Idempotent-Replayed" not in response.headers
        assert response.json()["id"] == user and response.json()["version"] == 2
    assert client.get(f"/users/{ada}").json()["name"] == "Ada K."
    assert client.get(f"/users/{grace}").json()["name"] == "Grace B."

    before = store_state(client)
    for headers, user, name, answer in (
        (as_ada, ada, "Ada K.", first),
        (as_grace, grace, "Grace B.", other),
    ):
        retry = client.put(f"/users/{user}/name", json={"name": name}, headers=headers)
        assert retry.status_code == 200, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json() == answer.json()
    assert store_state(client) == before
    # The operator's same key is theirs too: a third command, not a 422.
    third = client.post(
        "/users",
        json={"name": "Alan T.", "email": unique_email()},
        headers={"Idempotency-Key": key},
    )
    assert third.status_code == 201, third.text
    assert "Idempotent-Replayed" not in third.headers


def test_an_idempotency_key_replays_across_a_restart(settings: Settings) -> None:
    key = {"Idempotency-Key": f"restart-{uuid.uuid4()}"}
    body = {"name": "Ada", "email": unique_email()}
    with TestClient(create_app(settings), headers=OPERATOR) as before_restart:
        first = before_restart.post("/users", json=body, headers=key)
        positions = store_state(before_restart)
    with TestClient(create_app(settings), headers=OPERATOR) as after_restart:
        again = after_restart.post("/users", json=body, headers=key)
        assert again.json() == first.json()
        assert store_state(after_restart) == positions
        assert after_restart.get(f"/users/{first.json()['id']}").status_code == 200


def test_concurrent_commands_on_one_aggregate_lose_no_update(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no retry left, only the per-aggregate queue keeps these in-process writers from racing.
    monkeypatch.setattr(CommandService, "max_attempts", 1)
    user = register(client)
    names = [f"name {n}" for n in range(80)]

    def rename(name: str) -> int:
        status: int = client.put(f"/users/{user}/name", json={"name": name}).status_code
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(rename, names))

    assert statuses == [200] * len(names)
    events = list(services(client).users.events.get(uuid.UUID(user)))
    assert [e.originator_version for e in events] == list(range(1, len(names) + 2))
    renamed = [e.name for e in events if isinstance(e, UserProfile.Renamed)]
    assert sorted(renamed) == sorted(names)


def test_concurrent_registrations_with_one_address_admit_exactly_one(client: TestClient) -> None:
    email = unique_email("race")

    def attempt(n: int) -> int:
        status: int = client.post("/users", json={"name": f"racer {n}", "email": email}).status_code
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = Counter(pool.map(attempt, range(16)))

    assert statuses == Counter({201: 1, 409: 15})
    users = services(client).users
    registered = [
        n for n in users.recorder.select_notifications(start=1, limit=10_000) if b"racer" in n.state
    ]
    assert len(registered) == 1


def test_concurrent_retries_with_one_key_create_one_aggregate(client: TestClient) -> None:
    key = {"Idempotency-Key": f"parallel-{uuid.uuid4()}"}
    body = {"name": "Once", "email": unique_email("once")}

    def attempt(_: int) -> tuple[int, str]:
        response = client.post("/users", json=body, headers=key)
        return response.status_code, response.json()["id"]

    before = store_state(client)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = set(pool.map(attempt, range(12)))

    assert len(results) == 1 and next(iter(results))[0] == 201
    assert store_state(client)[0] == before[0] + 1


def test_the_correlation_id_of_a_command_is_stored_with_its_events_and_echoed(
    client: TestClient,
) -> None:
    trace = {"X-Correlation-Id": f"corr-{uuid.uuid4()}", "X-Causation-Id": "cause-1"}
    response = client.post("/users", json={"name": "Ada", "email": unique_email()}, headers=trace)
    assert response.headers["X-Correlation-Id"] == trace["X-Correlation-Id"]
    user = uuid.UUID(response.json()["id"])
    metadata = services(client).users.side_records.metadata_of(user, 1)
    assert metadata is not None
    assert (metadata.correlation_id, metadata.causation_id) == (
        trace["X-Correlation-Id"],
        "cause-1",
    )
    event = stored_events(services(client).users, user)[0]
    assert metadata.timestamp == event.timestamp

    untraced = client.put(f"/users/{user}/name", json={"name": "B"})
    generated = untraced.headers["X-Correlation-Id"]
    assert uuid.UUID(generated)
    stored = services(client).users.side_records.metadata_of(user, 2)
    assert stored is not None and stored.correlation_id == generated
    assert stored.causation_id is None
