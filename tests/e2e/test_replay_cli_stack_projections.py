"""`replay rebuild | projections | dlq` on the stack (PostgreSQL and Redis read models) through
the same settings as the services: rebuilds that swap, and kill -9 in the middle of one, then
resume."""

from pathlib import Path

import pytest

from projections.targets import target_at
from projections.verify import compare, fingerprint
from tests.support.dumps import checksum, dump_read_models
from tests.support.replay_cli import kill_mid_rebuild, ok_json, projected_stack, shadow_position


@pytest.mark.postgres
def test_the_same_commands_on_the_stack(tmp_path: Path) -> None:
    with projected_stack(tmp_path) as stack:
        live = checksum(dump_read_models(stack.targets))
        for name in ("user_profiles", "orders"):
            done = ok_json(stack.env, "rebuild", name)
            assert done["swapped"] and done["version"] == 2
        assert ok_json(stack.env, "rebuild", "top_spenders", "--dry-run")["target"] == (
            "redis rm:{top_spenders:v2}:*"
        )
        listed = {p["projection"]: p for p in ok_json(stack.env, "projections")["projections"]}
        assert listed["user_profiles"]["active_version"] == 2
        assert listed["orders"]["contexts"][0]["lag_events"] == 0
        assert ok_json(stack.env, "dlq", "list")["dead_letters"] == []
        for target in stack.targets:
            target.checkpoint("users" if "users" in target.projection.contexts else "orders")
        assert checksum(dump_read_models(stack.targets)) == live  # now read from version 2
        assert stack.redis.exists("rm:{user_profiles:v2}:ckpt:users")


@pytest.mark.postgres
def test_kill_9_mid_rebuild_on_the_stack_then_resume(tmp_path: Path) -> None:
    with projected_stack(tmp_path, orders=1500) as stack:
        reached = kill_mid_rebuild(stack.env, lambda: shadow_position(stack.db))
        assert 0 < reached < 1500

        resumed = ok_json(stack.env, "rebuild", "orders")
        assert resumed["resumed"] and resumed["version"] == 2 and resumed["swapped"]
        assert resumed["shadow_positions"]["orders"] > 0
        assert resumed["backfill"]["events"] < resumed["source_heads"]["orders"]
        orders = next(t for t in stack.targets if t.projection.name == "orders")
        orders.checkpoint("orders")  # re-reads the pointer: version 2
        assert orders.projection.version == 2
        assert fingerprint(orders) == resumed["checksum"]
        old = target_at(orders.projection, 1, stack.db)
        assert compare(old, orders).equal
