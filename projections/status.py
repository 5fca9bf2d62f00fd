"""Where each projection stands: active version, position and lag per context, dead letters,
and the versions side by side (the `replay projections` command)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from projections import dead_letters
from projections.rebuild_checkpoints import partition_floors
from projections.rebuild_targets import ReadModels
from readmodels.sql import Tx
from readmodels.versions import VersionRecord, active_versions, records


@dataclass(frozen=True)
class ContextLag:
    context: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "position": self.position,
            "head": self.head,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
        }


@dataclass
class ProjectionStatus:
    name: str
    active_version: int
    contexts: list[ContextLag] = field(default_factory=list)
    dead_letters: int = 0
    versions: list[VersionRecord] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "projection": self.name,
            "active_version": self.active_version,
            "contexts": [lag.as_json() for lag in self.contexts],
            "lag_events": sum(lag.lag_events for lag in self.contexts),
            "lag_seconds": max((lag.lag_seconds for lag in self.contexts), default=0.0),
            "dead_letters": self.dead_letters,
            "versions": [
                {
                    "version": r.version,
                    "label": r.label,
                    "kind": r.kind,
                    "status": r.status,
                    "as_of": None if r.as_of is None else r.as_of.isoformat(),
                    "created_at": r.created_at.isoformat(),
                }
                for r in self.versions
            ],
        }


def projection_statuses(models: ReadModels, now: datetime | None = None) -> list[ProjectionStatus]:
    moment = now or datetime.now(UTC)
    active, depth, versions = _bookkeeping(models)
    statuses = []
    for projection in models.projections:
        version = active.get(projection.name, 1)
        target = models.target(projection, version)
        status = ProjectionStatus(
            projection.name,
            version,
            dead_letters=depth.get((projection.name, version), 0),
            versions=[r for r in versions if r.projection == projection.name],
        )
        for context in projection.contexts:
            position = _position(models, target, context)
            head = models.heads(context)
            status.contexts.append(
                ContextLag(
                    context,
                    position,
                    head,
                    max(0, head - position),
                    _lag_seconds(models, context, position, head, moment),
                )
            )
        statuses.append(status)
    return statuses


def _bookkeeping(
    models: ReadModels,
) -> tuple[dict[str, int], dict[tuple[str, int], int], list[VersionRecord]]:
    def read(query: Any, empty: Any) -> Any:
        try:
            with models.db.transaction(write=False) as tx:
                return query(tx)
        except Exception as error:  # the table does not exist yet: nothing projected
            if models.db.dialect.is_infrastructure_error(error):
                raise
            return empty

    def active(tx: Tx) -> dict[str, int]:
        return {name: version for name, (version, _) in active_versions(tx).items()}

    return read(active, {}), read(dead_letters.depth, {}), read(records, [])


def _position(models: ReadModels, target: Any, context: str) -> int:
    """How far the model has applied every event of the context (`ReadModels.applied_through`);
    0 while its tables do not exist yet."""
    try:
        return models.applied_through(context, partition_floors(target, context))
    except Exception as error:
        if models.db.dialect.is_infrastructure_error(error):
            raise
        return 0


def _lag_seconds(
    models: ReadModels, context: str, position: int, head: int, now: datetime
) -> float:
    """How old the oldest event not yet applied is (0 when caught up)."""
    if position >= head:
        return 0.0
    following = models.sources[context].select_envelopes(context, position, 1)
    if not following:
        return 0.0
    return max(0.0, (now - following[0].timestamp).total_seconds())
