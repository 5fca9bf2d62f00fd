"""`replay rebuild` refuses to run while projector workers of the partitioned mode are members:
it catches the shadow up to the context checkpoints, which workers leave behind
(docs/scaling.md, Projector partitions)."""

from collections.abc import Iterator

import pytest
from click.testing import Result
from typer.testing import CliRunner

from contexts.registered import REGISTRY
from projections.leases import PartitionLeases
from replay.main import app as replay_app
from tests.support.postgres import require_postgres, scratch_databases

NAMESPACE = "rebuildguard"


@pytest.fixture
def read_url() -> Iterator[str]:
    with scratch_databases(require_postgres(), "read") as urls:
        yield urls["read"]


def _rebuild(read_url: str) -> Result:
    env = {f"STRATA_{name.upper()}_DATABASE_URL": read_url for name in REGISTRY.names}
    env |= {"STRATA_READ_DATABASE_URL": read_url, "STRATA_STREAM_NAMESPACE": NAMESPACE}
    return CliRunner().invoke(replay_app, ["rebuild", "users_directory"], env=env)


def test_a_rebuild_is_refused_in_one_line_while_a_worker_is_a_member(read_url: str) -> None:
    worker = PartitionLeases(read_url, NAMESPACE, "w1")
    worker.join()
    try:
        refused = _rebuild(read_url)
    finally:
        worker.close()
    assert refused.exit_code != 0
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "1 projector worker(s) of the partitioned mode are running" in refused.stderr

    after = _rebuild(read_url)  # the worker left: whatever happens now, not this refusal
    assert "projector worker" not in after.stderr, after.stderr


def test_a_worker_of_another_namespace_does_not_count(read_url: str) -> None:
    other = PartitionLeases(read_url, f"{NAMESPACE}-other", "w1")
    other.join()
    try:
        answer = _rebuild(read_url)
    finally:
        other.close()
    assert "projector worker" not in answer.stderr, answer.stderr
