"""Redis-server time of the read models' Lua script per event, against another version of it.

The document projections (`user_profiles`, `user_stats`, `top_spenders`) apply `--events`
envelopes of projector_throughput.py's journeys through their `RedisDocumentTarget`, in
batches of `--batch-size` (the projector's default, 256), on Redis database `--redis-db`
(flushed before each run). Redis reports the time spent in the script (`INFO commandstats`,
`cmdstat_evalsha`: each call whole, the commands it makes included). Runs with this tree's
script alternate with runs with the script of `--against` (a git revision), `--rounds` times
each. Prints the server time per event (best and median of the rounds) of both, per projection
and in all, the ratio this / against, and the commands the script made per event (the same in
every round: a figure the host's load does not blur).

    .venv/bin/python bench/redis_script_cost.py --redis-db 13
    .venv/bin/python bench/redis_script_cost.py --events 20000 --rounds 25 --against baac2c1
"""

from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from unittest import mock

from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from projector_fill import synthetic_events

from eventlog.envelope import EventEnvelope
from projections import redis_target
from projections.model import Apply, Message, OpsProjection
from projections.models import TopSpenders, UserProfiles, UserStats
from projections.redis_script import LUA
from readmodels.sql import SQLiteDatabase

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_PATH = "projections/redis_script.py"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", default="main", help="git revision of the other script")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=13, help="flushed; 0 is refused")
    return parser.parse_args()


def script_at(revision: str) -> str:
    """The LUA of projections/redis_script.py at `revision` (read, not run)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{SCRIPT_PATH}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["LUA"]:
            return str(ast.literal_eval(node.value))
    raise SystemExit(f"no LUA in {revision}:{SCRIPT_PATH}")


class Cost(NamedTuple):
    """Per event: µs the server spent in the script, and the commands the script made."""

    micros: float
    commands: float


def script_cost(redis: Redis, events: int) -> Cost:
    """Since the stats were reset: EVALSHA's time, and the calls of every other command but
    the bench's own INFO and CONFIG, per event."""
    stats = redis.info("commandstats")
    micros = float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    own = ("cmdstat_evalsha", "cmdstat_config", "cmdstat_info")
    calls = sum(int(found["calls"]) for name, found in stats.items() if name not in own)
    return Cost(micros / events, calls / events)


def run(redis: Redis, lua: str, events: Sequence[EventEnvelope], batch: int) -> dict[str, Cost]:
    """The cost of each projection's script calls, the script being `lua`."""
    costs: dict[str, Cost] = {}
    with tempfile.TemporaryDirectory() as scratch:
        dead_letters = SQLiteDatabase(Path(scratch) / "dead_letters.sqlite")
        projection: OpsProjection
        for projection in (UserProfiles(), UserStats(), TopSpenders()):
            redis.flushdb()
            with mock.patch.object(redis_target, "LUA", lua):
                target = redis_target.RedisDocumentTarget(redis, projection, dead_letters)
            target.prepare()
            applied = 0
            redis.config_resetstat()
            for context in projection.contexts:
                mine = [Message(e) for e in events if e.context == context]
                for start in range(0, len(mine), batch):
                    target.commit(context, [Apply(m) for m in mine[start : start + batch]])
                applied += len(mine)
            costs[projection.name] = script_cost(redis, applied)
        dead_letters.close()
    return costs


def summary(label: str, rounds: list[dict[str, Cost]]) -> tuple[float, float]:
    """Prints the rounds' figures; returns the best and the median µs per event in all."""
    totals = [sum(cost.micros for cost in r.values()) for r in rounds]
    best = {name: min(r[name].micros for r in rounds) for name in rounds[0]}
    commands = {name: cost.commands for name, cost in rounds[0].items()}
    print(
        f"  {label:<18} best {min(totals):.2f}, median {statistics.median(totals):.2f} µs/event"
        f" ({', '.join(f'{name} {micros:.2f}' for name, micros in best.items())});"
        f" commands/event {', '.join(f'{n} {c:.2f}' for n, c in commands.items())}"
    )
    return min(totals), statistics.median(totals)


def main() -> None:
    args = parse_arguments()
    if args.redis_db == 0:
        raise SystemExit("--redis-db 0 is refused: it is flushed")
    redis = Redis.from_url(args.redis, db=args.redis_db, decode_responses=True)
    events = list(synthetic_events(args.events))
    scripts = {"this tree": LUA, f"against {args.against}": script_at(args.against)}
    rounds: dict[str, list[dict[str, Cost]]] = {label: [] for label in scripts}
    for _ in range(args.rounds):
        for label, lua in scripts.items():
            rounds[label].append(run(redis, lua, events, args.batch_size))
    redis.flushdb()
    print(f"{args.events:,} events, batches of {args.batch_size}, {args.rounds} rounds each:")
    (this_best, this_median), (best, median) = (summary(k, v) for k, v in rounds.items())
    print(f"  ratio this / against: best {this_best / best:.2f}, median {this_median / median:.2f}")


if __name__ == "__main__":
    main()
