"""The projector's scale-out settings (a mixin of `runtime.settings.CommonSettings`).

`single` is one projector consuming every `pNN` partition under the leader lock, with hot
standbys (projections/leader.py). `partitioned` runs projector workers that split the partitions
between them by leases (projections/workers.py, docs/scaling.md "Projector partitions").
"""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from eventlog.envelope import PARTITIONS

ProjectorMode = Literal["single", "partitioned"]


class ProjectorSettings(BaseSettings):
    projector_mode: ProjectorMode = Field(
        "single",
        description="`single`: one projector consumes every partition, others wait as hot"
        " standbys. `partitioned`: every projector process is a worker holding leases on a"
        " share of the partitions, rebalanced as workers die or join (docs/scaling.md).",
    )
    projector_workers: int = Field(
        1,
        ge=1,
        le=PARTITIONS,
        description="Partitioned mode: how many projector workers the deployment runs"
        " (`scripts/stack`, compose `deploy.replicas`); the workers themselves share the"
        " partitions among those alive, whatever this says.",
    )
    projector_rebalance_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Partitioned mode: seconds between a worker's lease rounds (how soon it"
        " takes over a dead worker's partitions or gives a joining one its share).",
    )
