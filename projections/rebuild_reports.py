"""What a rebuild tells its caller: the plan, the result, progress as it goes, and why it failed."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class RebuildError(Exception):
    """The rebuild cannot be carried out (unknown projection, busy, nothing to retire)."""


class UnknownProjection(RebuildError):
    pass


class Busy(RebuildError):
    """Another process is rebuilding this (projection, version)."""


class VerifyFailed(RebuildError):
    """The shadow differs from the live model at the same position; live is untouched."""

    def __init__(self, projection: str, paths: list[str]) -> None:
        self.paths = paths
        shown = "; ".join(paths[:3]) + ("; …" if len(paths) > 3 else "")
        super().__init__(
            f"{projection}: the rebuilt model differs from live (kept): {shown}"
            " (if the projection's code changed on purpose, rebuild it with --changed)"
        )


class Progress(Protocol):
    def start(self, context: str, total: int) -> None: ...
    def advance(self, count: int) -> None: ...


@dataclass(frozen=True)
class Plan:
    projection: str
    kind: str  # 'rebuild' or 'audit'
    live_version: int
    version: int
    resumed: bool
    as_of: datetime | None
    target: str
    heads: dict[str, int]
    done: dict[str, int]

    @property
    def remaining(self) -> int:
        return sum(max(0, self.heads[c] - self.done.get(c, 0)) for c in self.heads)

    def as_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "kind": self.kind,
            "live_version": self.live_version,
            "version": self.version,
            "resumed": self.resumed,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "target": self.target,
            "source_heads": self.heads,
            "shadow_positions": self.done,
            "events_to_read": self.remaining,
        }


@dataclass
class Result:
    plan: Plan
    events: int = 0
    seconds: float = 0.0
    backfill_events: int = 0
    backfill_seconds: float = 0.0
    swapped: bool = False
    checksum: str | None = None
    positions: dict[str, int] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    """The first ways the swapped-in version differed from live (a rebuild of changed code)."""

    def as_json(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds > 0 else None
        return {
            **self.plan.as_json(),
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": None if rate is None else round(rate, 1),
            "backfill": {
                "events": self.backfill_events,
                "seconds": round(self.backfill_seconds, 3),
            },
            "swapped": self.swapped,
            "checksum": self.checksum,
            "positions": self.positions,
            "differences": self.differences,
        }
