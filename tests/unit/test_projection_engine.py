"""The projection engine's decisions: parking a failing event with its aggregate, the retry
policy, duplicates and disorder in a batch, and which Redis replies are retried."""

import pytest
from redis import ResponseError
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from projections.engine import Engine, RetryPolicy
from projections.redis_target import is_infrastructure_reply
from readmodels.checkpoints import Checkpoint
from tests.support.projection_doubles import FakeTarget, paid_messages


def test_a_failing_event_is_set_aside_at_once_with_its_aggregate_and_the_batch_commits() -> None:
    target = FakeTarget(failing={11: 99, 13: 99})
    engine = Engine(target, RetryPolicy(delays=(60.0,)))

    outcome = engine.handle("orders", paid_messages(10, 11, 12, 21, 13, 31))

    # one commit per failing event, then the one that goes through: no pause, no retry in line
    assert target.commits == 3
    assert target.applied == [10, 12]
    assert target.parked == [
        (11, "ValueError: boom", 1),
        (13, "ValueError: boom", 1),
        (21, "blocked by position 11", 0),
        (31, "blocked by position 11", 0),
    ]
    assert (outcome.applied, outcome.parked, outcome.checkpoint) == (2, 4, Checkpoint(31))


def test_the_retry_policy_spaces_the_attempts_then_gives_up() -> None:
    policy = RetryPolicy(delays=(0.5, 2.0, 10.0))

    assert policy.attempts == 4
    assert [policy.delay_after(n) for n in range(5)] == [None, 0.5, 2.0, 10.0, None]


def test_duplicates_and_disorder_inside_a_batch_are_sorted_out() -> None:
    target = FakeTarget(failing={})
    engine = Engine(target)
    engine.handle("orders", paid_messages(1, 2))

    outcome = engine.handle("orders", paid_messages(4, 2, 3, 4, 1))

    assert target.applied == [1, 2, 3, 4]
    assert outcome.duplicates == 3


@pytest.mark.parametrize(
    ("reply", "infrastructure"),
    [
        (ReadOnlyError("You can't write against a read only replica."), True),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."), True),
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("Error running script (call to f_1): user_script:9: bad argument"), False),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
def test_redis_replies_about_the_server_are_retried_not_parked(
    reply: ResponseError, infrastructure: bool
) -> None:
    assert is_infrastructure_reply(reply) is infrastructure
