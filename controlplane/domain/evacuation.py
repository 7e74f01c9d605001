"""Evacuation: restarting a DOWN host's instances elsewhere, and when it is safe to.

A data centre's ``evacuation_policy`` says what happens to the instances of a host that
went DOWN: ``none`` (they stay UNKNOWN until the host returns; the operator decides) or
``restart-elsewhere`` (they are re-placed through the scheduler, with quotas and server
groups respected, and started on another host).

Safety comes from a lease. In a ``restart-elsewhere`` data centre every heartbeat ack
gives the agent a self-fencing lease (``fence_after_s``): an agent that cannot reach the
control plane for that long powers its domains off (``Agent.check_isolation``). The
control plane evacuates only once the host's last heartbeat is older than the lease plus
a margin, so even an agent that is alive behind a network partition has stopped its copy
before another host starts one; when it returns, its reconcile pass deletes every domain
no longer assigned to it. An instance never runs on two hosts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EvacuationPolicy(StrEnum):
    """What happens to instances of a DOWN host."""

    NONE = "none"
    RESTART_ELSEWHERE = "restart-elsewhere"


class EvacuationTiming(BaseModel):
    """The lease the agents get and the margin the control plane waits beyond it."""

    model_config = ConfigDict(frozen=True)

    fence_after_s: float = Field(30.0, gt=0)
    margin_s: float = Field(15.0, gt=0)
    #: The liveness DOWN timeout: evacuation never comes before the host is DOWN.
    down_after_s: float = Field(12.0, gt=0)

    @model_validator(mode="after")
    def _after_down(self) -> EvacuationTiming:
        if self.fence_after_s <= self.down_after_s:
            raise ValueError(
                f"the fencing lease ({self.fence_after_s} s) must be longer than the DOWN "
                f"timeout ({self.down_after_s} s), or healthy hosts would fence themselves "
                "before the control plane even noticed"
            )
        return self

    @property
    def evacuate_after_s(self) -> float:
        """Silence after which a DOWN host's instances may be restarted elsewhere."""
        return self.fence_after_s + self.margin_s

    def evacuate_before(self, now: datetime) -> datetime:
        """Hosts whose last heartbeat is older than this may be evacuated."""
        return now - timedelta(seconds=self.evacuate_after_s)

    def lease_for(self, policy: EvacuationPolicy) -> float:
        """The ``fence_after_s`` an agent in a data centre with ``policy`` is given."""
        return self.fence_after_s if policy is EvacuationPolicy.RESTART_ELSEWHERE else 0.0
