"""X-Read-Position on every endpoint, and read-your-writes with `position` and `wait`."""

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contexts.registered import REGISTRY
from read_api.app import create_app
from readmodels.catalog import (
    DAILY_SALES,
    ORDERS,
    TOP_SPENDERS,
    USER_PROFILES,
    USER_STATS,
    USERS_DIRECTORY,
    ReadModel,
)
from readmodels.fulfilment_catalog import FULFILMENTS, PAYMENTS, SHIPMENTS
from tests.support.api import assert_problem
from tests.support.auth import OPERATOR
from tests.support.read_models import Backend

USER = uuid.UUID("00000000-0000-4000-8000-000000000001")
ORDER = uuid.UUID("00000000-0000-4000-8000-000000000002")
MAX_WAIT = 10.0
"""The longest wait a read may ask for (`STRATA_READ_WAIT_MAX_SECONDS` by default)."""

ENDPOINTS: list[tuple[str, tuple[ReadModel, ...]]] = [
    (f"/users/{USER}", (USER_PROFILES,)),
    (f"/users/{USER}/stats", (USER_PROFILES, USER_STATS)),
    ("/users", (USERS_DIRECTORY,)),
    ("/leaderboards/EUR/top-spenders", (TOP_SPENDERS,)),
    ("/orders", (ORDERS,)),
    (f"/orders/{ORDER}", (ORDERS, FULFILMENTS)),
    ("/sales/daily", (DAILY_SALES,)),
    ("/payments", (PAYMENTS,)),
    ("/shipments", (SHIPMENTS,)),
    ("/fulfilments", (FULFILMENTS,)),
]
CHECKPOINTS = {
    USER_PROFILES: 11,
    USER_STATS: 22,
    TOP_SPENDERS: 33,
    USERS_DIRECTORY: 44,
    ORDERS: 55,
    DAILY_SALES: 66,
    PAYMENTS: 77,
    SHIPMENTS: 88,
    FULFILMENTS: 99,
}


@pytest.fixture
def known(backend: Backend) -> Backend:
    """One user and one order in every read model, each projection at its own checkpoint."""
    backend.write.profile(USER, "Ada", "ada@example.com")
    backend.write.directory_entry(USER, "Ada")
    backend.write.order(ORDER, USER)
    for projection, position in CHECKPOINTS.items():
        backend.write.checkpoint(projection, projection.contexts[0], position)
    return backend


def expected_header(projections: tuple[ReadModel, ...]) -> str:
    reached: dict[str, int] = {}
    for projection in projections:
        context = projection.contexts[0]
        reached[context] = min(reached.get(context, 10**9), CHECKPOINTS[projection])
    return ",".join(f"{c}:{reached[c]}" for c in REGISTRY.names if c in reached)


@pytest.mark.parametrize(("path", "behind"), ENDPOINTS)
def test_every_endpoint_says_which_positions_it_reflects(
    client: TestClient, known: Backend, path: str, behind: tuple[ReadModel, ...]
) -> None:
    response = client.get(path)

    assert response.status_code == 200, response.text
    assert response.headers["X-Read-Position"] == expected_header(behind)


@pytest.mark.parametrize(("path", "behind"), ENDPOINTS)
def test_a_position_already_reached_answers_at_once(
    client: TestClient, known: Backend, path: str, behind: tuple[ReadModel, ...]
) -> None:
    context = behind[0].contexts[0]
    started = time.perf_counter()
    position = f"{context}:{CHECKPOINTS[behind[0]]}"

    response = client.get(path, params={"position": position, "wait": MAX_WAIT})

    assert response.status_code == 200, response.text
    # Had it waited, it would have taken the whole wait: half of it leaves room for a slow host.
    assert time.perf_counter() - started < MAX_WAIT / 2


@pytest.mark.parametrize(("path", "behind"), ENDPOINTS)
def test_a_position_not_reached_in_time_is_503_with_retry_after(
    client: TestClient, known: Backend, path: str, behind: tuple[ReadModel, ...]
) -> None:
    context = behind[0].contexts[0]
    wanted = f"{context}:{CHECKPOINTS[behind[0]] + 1}"
    started = time.perf_counter()

    response = client.get(path, params={"position": wanted, "wait": 0.3})

    elapsed = time.perf_counter() - started
    body = assert_problem(response, 503, wanted, "after waiting 0.3 s")
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Read-Position"] == expected_header(behind)
    assert (body["position"], body["reached"]) == (wanted, expected_header(behind))
    assert 0.3 <= elapsed < 1.5


def test_the_stats_wait_for_the_projection_of_the_positions_context(
    client: TestClient, known: Backend
) -> None:
    path = f"/users/{USER}/stats"

    assert client.get(path, params={"position": "users:11", "wait": 0}).status_code == 200
    assert client.get(path, params={"position": "orders:22", "wait": 0}).status_code == 200
    assert_problem(client.get(path, params={"position": "users:12", "wait": 0}), 503)
    assert_problem(client.get(path, params={"position": "orders:23", "wait": 0}), 503)


def test_a_position_of_a_context_no_projection_behind_the_endpoint_reads_answers_at_once(
    client: TestClient, known: Backend
) -> None:
    response = client.get("/orders", params={"position": "users:999999", "wait": 5})

    assert response.status_code == 200
    assert response.headers["X-Read-Position"] == "orders:55"


def test_without_wait_a_read_waits_the_default_of_the_settings(backend: Backend) -> None:
    settings = backend.settings.model_copy(update={"read_wait_default_seconds": 0.2})
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        started = time.perf_counter()
        response = client.get("/orders", params={"position": "orders:1"})

    assert_problem(response, 503, "after waiting 0.2 s")
    assert 0.2 <= time.perf_counter() - started < 1.5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"position": "users"}, "query.position"),
        ({"position": "users:"}, "query.position"),
        ({"position": "billing:3"}, "query.position"),
        ({"position": "USERS:3"}, "query.position"),
        ({"position": "users:-1"}, "query.position"),
        ({"position": "users:1.5"}, "query.position"),
        ({"position": "users:1", "wait": -1}, "query.wait"),
        ({"position": "users:1", "wait": "soon"}, "query.wait"),
        ({"position": "users:1", "wait": 10.5}, "query.wait"),
        ({"wait": 11}, "query.wait"),
    ],
)
def test_a_bad_position_or_wait_is_422_naming_it(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(client.get("/users", params=params), 422, field)
    assert body["errors"][0]["field"] == field


class Later(threading.Thread):
    """A write run on another thread after a delay; `done_at` is when it completed."""

    def __init__(self, write: Callable[[], None], delay: float) -> None:
        super().__init__()
        self._write, self._delay = write, delay
        self.done_at = 0.0

    def run(self) -> None:
        time.sleep(self._delay)
        self._write()
        self.done_at = time.perf_counter()


@pytest.mark.parametrize(
    ("path", "projection"),
    [(f"/users/{USER}", USER_PROFILES), ("/orders", ORDERS)],
    ids=["key-value", "relational"],
)
def test_a_read_answers_promptly_once_the_checkpoint_reaches_the_position(
    client: TestClient,
    known: Backend,
    path: str,
    projection: ReadModel,
) -> None:
    """The wait ends on the projector's notification (stack) or a 5 ms poll (embedded): the
    answer comes well within the 100 ms a plain poll loop would cost."""
    context = projection.contexts[0]
    lags = []
    for trial in range(1, 6):
        target = CHECKPOINTS[projection] + trial

        def advance(target: int = target) -> None:
            known.write.checkpoint(projection, context, target)

        later = Later(advance, 0.25)
        later.start()
        started = time.perf_counter()
        response = client.get(path, params={"position": f"{context}:{target}", "wait": 5})
        answered = time.perf_counter()
        later.join()

        assert response.status_code == 200, response.text
        assert response.headers["X-Read-Position"] == f"{context}:{target}"
        assert answered - started >= 0.2, "the read must have waited for the write"
        lags.append(answered - later.done_at)

    assert statistics.median(lags) < 0.05, f"lags after the checkpoint moved: {lags}"


def test_past_the_most_waiting_reads_a_read_that_must_wait_gets_its_503_at_once(
    known: Backend,
) -> None:
    """Overload: waiting reads are bounded in number too, not only in time; one more read
    neither queues nor waits, while a read whose position is reached still answers."""
    settings = known.settings.model_copy(update={"read_max_waiting": 1})
    context, position = ORDERS.contexts[0], CHECKPOINTS[ORDERS]
    wanted = {"position": f"{context}:{position + 1}"}
    with TestClient(create_app(settings), headers=OPERATOR) as client:
        answers: list[Any] = []
        first = threading.Thread(
            target=lambda: answers.append(client.get("/orders", params={**wanted, "wait": 5}))
        )
        first.start()
        deadline = time.monotonic() + 5
        while "strata_read_waiting 1.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the first read never waited"
            time.sleep(0.02)

        started = time.perf_counter()
        refused = client.get("/orders", params=wanted)
        elapsed = time.perf_counter() - started
        reached = client.get("/orders", params={"position": f"{context}:{position}"})
        known.write.checkpoint(ORDERS, context, position + 1)
        first.join(10)

    body = assert_problem(refused, 503, "1 reads wait already", "after waiting 0 s")
    assert refused.headers["Retry-After"] == "1"
    assert body["reached"] == f"{context}:{position}"
    assert elapsed < 0.5, "the read beyond the bound must not wait"
    assert reached.status_code == 200, reached.text
    assert [answer.status_code for answer in answers] == [200]


@pytest.mark.parametrize(
    ("path", "projection"),
    [(f"/users/{USER}", USER_PROFILES), ("/orders", ORDERS)],
    ids=["key-value", "relational"],
)
def test_a_partition_token_waits_for_its_partition_only(
    client: TestClient, known: Backend, path: str, projection: ReadModel
) -> None:
    """Projector workers keep a checkpoint per partition: `<context>:<n>:p<NN>` is reached once
    partition NN is, a bare `<context>:<n>` once every partition is (the context checkpoint
    covers every partition), and moving the partition's checkpoint wakes the waiting read."""
    context, whole = projection.contexts[0], CHECKPOINTS[projection]
    known.write.partition_checkpoint(projection, context, 3, whole + 50)

    def status(position: str, wait: float = 0) -> int:
        status: int = client.get(path, params={"position": position, "wait": wait}).status_code
        return status

    assert status(f"{context}:{whole + 50}:p03") == 200
    assert status(f"{context}:{whole}:p04") == 200  # the context checkpoint covers p04
    assert status(f"{context}:{whole + 1}:p04") == 503
    assert status(f"{context}:{whole + 1}") == 503  # the other partitions are at `whole`
    later = Later(lambda: known.write.partition_checkpoint(projection, context, 4, whole + 9), 0.2)
    later.start()
    assert status(f"{context}:{whole + 9}:p04", wait=5) == 200
    later.join()
    answered = client.get(path)
    assert answered.headers["X-Read-Position"] == f"{context}:{whole}"  # p00 is still there
