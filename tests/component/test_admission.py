"""Admission control: past its bound of commands in flight, a write service refuses a command at
once with a 503 and does nothing for it; queries still pass, and the bound frees with the
commands. A command is held in flight by a store that commits only when the test says so. How the
bound adapts to the measured service rate: tests/unit/test_admission_bound.py."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eventsourcing.persistence import Recording
from fastapi.testclient import TestClient
from pydantic import ValidationError

from contexts.settings import Settings
from domain.ports import Committer, UnitOfWork
from tests.support.api import assert_problem, register, services, store_state, unique_email
from tests.support.auth import OPERATOR
from write_api.app import create_app

HOLD_SECONDS = 60  # only a broken test waits this long


class HeldCommits:
    """A committer that lets each commit through only once `release` is set."""

    def __init__(self, inner: Committer) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def commit(self, unit: UnitOfWork) -> list[Recording[Any]]:
        self.entered.set()
        if not self.release.wait(HOLD_SECONDS):
            raise TimeoutError("the test never released the held commit")
        return self.inner.commit(unit)


@pytest.fixture
def one_at_a_time(settings: Settings) -> Iterator[TestClient]:
    bounded = settings.model_copy(update={"max_commands_in_flight": 1})
    with TestClient(create_app(bounded), headers=OPERATOR) as client:
        yield client


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} on /metrics")


def refused_total(client: TestClient) -> float:
    return metric(client, "strata_commands_refused_total")


def test_past_the_bound_a_command_is_refused_at_once_and_changes_nothing(
    one_at_a_time: TestClient,
) -> None:
    client = one_at_a_time
    user = register(client)
    users = services(client).users
    held = HeldCommits(users.committer)
    users.committer = held
    refused_email = unique_email("refused")
    with ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(client.put, f"/users/{user}/name", json={"name": "Held"})
            assert held.entered.wait(HOLD_SECONDS), "the first command never reached the store"
            before = store_state(client)

            # The first command cannot finish before `release`: this answer did not wait for it.
            refused = client.post("/users", json={"name": "Late", "email": refused_email})
            assert_problem(refused, 503, "1 commands are in flight already")
            assert refused.headers["Retry-After"] == "1"
            assert not first.done()
            assert client.get(f"/users/{user}").json()["name"] != "Held"  # queries pass
            assert store_state(client) == before
            assert refused_total(client) == 1
            assert metric(client, "strata_commands_in_flight") == 1
            assert metric(client, "strata_commands_in_flight_limit") == 1
        finally:
            held.release.set()
            users.committer = held.inner
        assert first.result().status_code == 200

    # The bound freed with the command, and the refused one claimed nothing: its email is free.
    again = client.post("/users", json={"name": "Late", "email": refused_email})
    assert again.status_code == 201, again.text
    assert client.get(f"/users/{user}").json()["name"] == "Held"
    assert refused_total(client) == 1


def test_the_default_ceiling_is_the_worker_threads() -> None:
    assert Settings(worker_threads=12).commands_in_flight_limit == 12
    assert Settings(worker_threads=12, max_commands_in_flight=3).commands_in_flight_limit == 3


def test_the_latency_target_is_positive_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATA_ADMISSION_TARGET_MS", "12.5")
    assert Settings().admission_target_ms == 12.5
    monkeypatch.setenv("STRATA_ADMISSION_TARGET_MS", "0")
    with pytest.raises(ValidationError, match="admission_target_ms"):
        Settings()
