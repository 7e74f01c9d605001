"""Request bodies for moving instances: migrate one, drain or maintain a host, evacuate a
data centre (responses are the domain models ``Migration`` and ``Drain``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from controlplane.domain.migration import DEFAULT_MAX_PARALLEL, MAX_PARALLEL_LIMIT
from controlplane.domain.names import Code


class MigrateRequest(BaseModel):
    """``POST /v1/instances/{id}/migrate``: live-migrate within the data centre."""

    model_config = ConfigDict(extra="forbid")

    #: Target host (id or name); absent: the scheduler picks one (never the source).
    target: str | None = Field(None, min_length=1, max_length=63)


class DrainRequest(BaseModel):
    """``POST /v1/hosts/{host}/drain``."""

    model_config = ConfigDict(extra="forbid")

    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=MAX_PARALLEL_LIMIT)


class MaintenanceRequest(BaseModel):
    """``POST /v1/hosts/{host}/maintenance``: drain, then MAINTENANCE until ``until``."""

    model_config = ConfigDict(extra="forbid")

    until: datetime
    reason: str = Field("", max_length=200)
    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=MAX_PARALLEL_LIMIT)


class EvacuateRequest(BaseModel):
    """``POST /v1/datacentres/{code}/evacuate``: move every instance to ``target``."""

    model_config = ConfigDict(extra="forbid")

    target: Code
    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=MAX_PARALLEL_LIMIT)
