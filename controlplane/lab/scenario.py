"""Cloud Open Lab scenarios: what a run provisions and which load it applies (models).

A scenario (``govcloud lab run TRIAL scenario.yaml``) names groups of VMs -- a flavor, an
image, a count, optionally a server-group policy -- each with a
:class:`~agents.protocol.v1.LoadProfile` (CPU, RAM and disk curves), and how long the load
runs. Example::

    name: dictionary-peak
    duration_s: 600
    sample_interval_s: 5
    groups:
      - name: web
        flavor: m1.small
        image: cirros
        count: 4
        server_group: anti-affinity
        load:
          cpu: {shape: sine, low: 0.2, high: 0.8, period_s: 120}
          ram: {shape: ramp, low: 0.3, high: 0.6, period_s: 300}

The store provisions the groups in the trial's project; the agents apply (simulated hosts)
or measure (real hosts) the load; :mod:`controlplane.lab.measure` summarises the samples.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.protocol.v1 import LoadProfile
from controlplane.domain.names import Code, Name, Text, require_unique
from controlplane.domain.server_group import GroupPolicy

#: Limits of one scenario (named in the errors).
MAX_GROUPS = 20
MAX_GROUP_COUNT = 100
MAX_DURATION_S = 7 * 86400.0


class ScenarioGroup(BaseModel):
    """A group of identical VMs under one load profile."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    flavor: Name
    image: Name
    count: int = Field(1, ge=1, le=MAX_GROUP_COUNT)
    datacentre: Code | None = None
    server_group: GroupPolicy | None = Field(
        None, description="place the group's VMs under this server-group policy"
    )
    load: LoadProfile = LoadProfile()


class Scenario(BaseModel):
    """A scenario run's definition."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Text = ""
    duration_s: float = Field(gt=0, le=MAX_DURATION_S, description="how long the load runs")
    sample_interval_s: float = Field(5.0, gt=0, le=3600, description="agents sample this often")
    provision_timeout_s: float = Field(
        600.0, gt=0, le=86400, description="VMs not running by then count as failures"
    )
    groups: list[ScenarioGroup] = Field(min_length=1, max_length=MAX_GROUPS)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        require_unique((g.name for g in self.groups), "group names")
        return self

    @property
    def vm_count(self) -> int:
        """VMs the scenario provisions."""
        return sum(g.count for g in self.groups)


class RunState(StrEnum):
    """Where a scenario run is: provisioning -> loading -> cleaning -> completed, or
    cancelling -> cancelled (everything it created removed), or failed (nothing ran)."""

    PROVISIONING = "provisioning"
    LOADING = "loading"
    CLEANING = "cleaning"
    COMPLETED = "completed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Still has work to do (the loop advances it)."""
        return self in _ACTIVE


_ACTIVE = frozenset(
    {RunState.PROVISIONING, RunState.LOADING, RunState.CLEANING, RunState.CANCELLING}
)
