"""Host requests: bootstrap tokens and operator updates."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

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

    @field_validator("state")
    @classmethod
    def _operator_state(cls, state: HostState | None) -> HostState | None:
        if state in LIVENESS_STATES:
            raise ValueError(
                f"{state} is set by the liveness loop from missing heartbeats; an operator "
                "may set active, maintenance or disabled"
            )
        return state
