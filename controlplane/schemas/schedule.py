"""The dry-run scheduling request (``POST /v1/schedule``) and its answer."""

from __future__ import annotations

from pydantic import BaseModel, Field

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.instance import PlacementExplanation
from controlplane.domain.names import Code, Name, Trait
from controlplane.schemas.common import Strict
from controlplane.schemas.instance import MAX_COUNT, MAX_TRAITS


class ScheduleRequest(Strict):
    """Where would ``count`` instances of ``flavor`` go now? Nothing is written."""

    flavor: Name
    count: int = Field(1, ge=1, le=MAX_COUNT)
    datacentre: Code | None = None
    #: Needed to name a server group (groups are per project).
    project: Code | None = None
    server_group: Name | None = None
    required_traits: list[Trait] = Field(default_factory=list, max_length=MAX_TRAITS)
    forbidden_traits: list[Trait] = Field(default_factory=list, max_length=MAX_TRAITS)
    policy: PlacementPolicy | None = None


class ScheduledInstance(BaseModel):
    """Where the n-th instance (1-based) would go."""

    index: int
    host: str
    datacentre: str


class ScheduleResult(BaseModel):
    """The plan (possibly partial or empty) and why."""

    requested: int
    complete: bool
    placements: list[ScheduledInstance]
    explanation: PlacementExplanation
