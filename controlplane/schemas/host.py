"""Host requests: bootstrap tokens and operator updates."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from controlplane.domain.consolidation import MAX_WATTS
from controlplane.domain.host import LIVENESS_STATES, AllocationRatios, HostState
from controlplane.domain.names import Code, Trait
from controlplane.domain.resources import Resources
from controlplane.schemas.common import Strict


class BootstrapTokenCreate(Strict):
    """Ask for a one-time token with which an agent joins ``datacentre``."""

    datacentre: Code
    ttl_hours: float = Field(24.0, gt=0, le=24 * 30)


class BootstrapToken(BaseModel):
    """The token (shown once) and when it expires."""

    token: str
    datacentre: str
    expires_at: datetime


class HostUpdate(Strict):
    """Operator changes to a host; unset fields stay as they are."""

    state: HostState | None = Field(
        None, description="active, maintenance or disabled (suspect and down are set by liveness)"
    )
    ratios: AllocationRatios | None = None
    reserved: Resources | None = None
    traits: list[Trait] | None = None
    #: Power model for consolidation (docs/fleet.md); peak must not be below idle.
    idle_watts: float | None = Field(None, ge=0, le=MAX_WATTS)
    peak_watts: float | None = Field(None, gt=0, le=MAX_WATTS)

    @field_validator("peak_watts")
    @classmethod
    def _peak_not_below_idle(cls, peak: float | None, info: ValidationInfo) -> float | None:
        idle = info.data.get("idle_watts")
        if peak is not None and idle is not None and peak < idle:
            raise PydanticCustomError(
                "peak_below_idle",
                "peak_watts ({value}) must be at least idle_watts ({min_peak})",
                {"value": peak, "min_peak": idle},
            )
        return peak

    @field_validator("state")
    @classmethod
    def _operator_state(cls, state: HostState | None) -> HostState | None:
        if state in LIVENESS_STATES:
            raise ValueError(
                f"{state} is set by the liveness loop from missing heartbeats; an operator "
                "may set active, maintenance or disabled"
            )
        return state
