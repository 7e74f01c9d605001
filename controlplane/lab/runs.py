"""Scenario runs as the API shows them (models): the run, its progress and its series."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from controlplane.lab.measure import GroupUsage
from controlplane.lab.scenario import RunState, Scenario


class GroupFailure(BaseModel):
    """A group (or part of one) that could not even be requested, and why."""

    count: int
    code: str
    reason: str


class LabRun(BaseModel):
    """A scenario run of a trial."""

    id: str
    trial_id: str
    name: str
    state: RunState
    message: str = ""
    scenario: Scenario
    created_by: str
    created_at: datetime
    load_started_at: datetime | None = None
    load_ended_at: datetime | None = None
    finished_at: datetime | None = None
    vms: int = Field(description="VMs the run created")
    running: int = Field(description="VMs that reached RUNNING")
    failed: int = Field(description="VMs that failed, or could not be requested")
    live: int = Field(description="VMs not deleted yet")
    samples: int
    failures: dict[str, GroupFailure] = Field(default_factory=dict)
    groups: list[GroupUsage] = Field(
        default_factory=list, description="per group: provisioning times and utilisation"
    )


class SeriesPoint(BaseModel):
    """One sample of one VM (the run's utilisation time series)."""

    at: datetime
    group: str
    instance_id: str
    cpu: float
    ram: float
    disk: float
    source: str
