"""A read API serving from a streaming replica of the stack's read database, as a client meets
it: the stack's projector writes the read models on the primary, a second `strata-read-api`
reads them on a replica (`STRATA_READ_REPLICA_URL`), and a command's `position` still gives
read-your-writes, because the read waits for the replica's checkpoint (issue 11, item 6)."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.api import assert_problem
from tests.support.auth import OPERATOR
from tests.support.processes import entry_point, running_service
from tests.support.replica import StreamingReplica, streaming_replica
from tests.support.servers import wait_until
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def replica(stack: Stack) -> Iterator[StreamingReplica]:
    with streaming_replica(stack.servers.postgres) as made:
        yield made


@pytest.fixture(scope="module")
def replica_read_api(stack: Stack, replica: StreamingReplica) -> Iterator[str]:
    env = {**stack.env, "STRATA_READ_REPLICA_URL": replica.url("strata_read")}
    script = entry_point("strata-read-api")
    with running_service(script, env, "STRATA_READ_API_PORT") as (base, _process):
        yield base


def register(stack: Stack, name: str) -> str:
    """Register a user named `name`; the command's position."""
    body = {"name": name, "email": f"{uuid.uuid4().hex}@example.com"}
    response = httpx.post(f"{stack.url('write-users')}/users", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    position: str = response.json()["position"]
    return position


def directory(base: str, prefix: str, position: str, wait: float) -> httpx.Response:
    params: dict[str, str | float] = {"name_prefix": prefix, "position": position, "wait": wait}
    return httpx.get(f"{base}/users", params=params, headers=OPERATOR, timeout=wait + 10)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entry["name"] for entry in response.json()["items"]]


def waiting_reads(base: str) -> bool:
    return "strata_read_waiting 1.0" in httpx.get(f"{base}/metrics").text


def test_a_read_on_the_replica_waits_for_the_replicas_checkpoint(
    stack: Stack, replica: StreamingReplica, replica_read_api: str
) -> None:
    prefix = f"Rep{uuid.uuid4().hex[:8]}"
    first = register(stack, f"{prefix} Ada")
    assert names(directory(replica_read_api, prefix, first, 10)) == [f"{prefix} Ada"]

    replica.pause_replay()
    try:
        second = register(stack, f"{prefix} Bea")
        late = directory(replica_read_api, prefix, second, 1)
        assert_problem(late, 503, second, "after waiting 1 s", "read replica replays")
        assert late.headers["Retry-After"] == "1"
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(directory, replica_read_api, prefix, second, 10)
            wait_until(lambda: waiting_reads(replica_read_api), 10, "the read waits")
            replica.resume_replay()
            answer = waiting.result(timeout=20)
    finally:
        replica.resume_replay()
    assert names(answer) == [f"{prefix} Ada", f"{prefix} Bea"]
    ready = httpx.get(f"{replica_read_api}/readyz").json()
    assert ready["replica"]["in_recovery"] is True
    assert ready["replica"]["replay_paused"] is False
