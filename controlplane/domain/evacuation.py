"""Evacuation: restarting a DOWN host's instances elsewhere, and when it is safe to.

A data centre's ``evacuation_policy`` says what happens to the instances of a host that
went DOWN: ``none`` (they stay UNKNOWN until the host returns; the operator decides) or
``restart-elsewhere`` (they are re-placed through the scheduler, with quotas and server
groups respected, and started on another host). A ministry may override it for its own
instances in every data centre (``govcloud org update moe --evacuation ...``), or inherit
(:func:`applied_policy` decides, per instance, and says where the policy came from).

Safety comes from a lease. In a ``restart-elsewhere`` data centre every heartbeat ack
gives the agent a self-fencing lease (``fence_after_s``): an agent that cannot reach the
control plane for that long powers its domains off (``Agent.check_isolation``). The
control plane evacuates only once the host's last heartbeat is older than the lease plus
a margin, so even an agent that is alive behind a network partition has stopped its copy
before another host starts one; when it returns, its reconcile pass deletes every domain
no longer assigned to it. An instance never runs on two hosts.

The agent's self-fencing lives in the agent process; if that process dies while its VMs
keep running, the host-side fence watchdog (``agents/watchdog.py``) destroys them once
the lease the agent last refreshed is older than ``fence_after_s``. It checks at least
every :data:`WATCHDOG_MAX_LAG_S`, so the invariant is ``fence_after_s +
WATCHDOG_MAX_LAG_S < fence_after_s + margin_s`` (the evacuation delay), i.e. ``margin_s >
WATCHDOG_MAX_LAG_S``: :class:`EvacuationTiming` refuses a smaller margin and the agent's
settings refuse a slower watchdog.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Longest a host-side fence may lag behind the lease: the fence watchdog checks the lease
#: at least this often (``fence_check_interval_s``), and the evacuation margin must exceed it.
WATCHDOG_MAX_LAG_S = 5.0


class EvacuationPolicy(StrEnum):
    """What happens to instances of a DOWN host."""

    NONE = "none"
    RESTART_ELSEWHERE = "restart-elsewhere"


class EvacuationOverride(StrEnum):
    """A ministry's setting: one of the policies, or ``inherit`` its data centres'."""

    NONE = "none"
    RESTART_ELSEWHERE = "restart-elsewhere"
    INHERIT = "inherit"

    @property
    def policy(self) -> EvacuationPolicy | None:
        """The policy it forces, or None when it inherits."""
        return None if self is EvacuationOverride.INHERIT else EvacuationPolicy(self.value)


class AppliedPolicy(BaseModel):
    """The policy that governs one instance, and where it came from."""

    model_config = ConfigDict(frozen=True)

    policy: EvacuationPolicy
    #: ``ministry`` (its override) or ``datacentre`` (inherited).
    source: str
    #: The ministry's or the data centre's code.
    owner: str

    def describe(self) -> str:
        """For the action history: ``ministry moe's restart-elsewhere policy``."""
        kind = "ministry" if self.source == "ministry" else "data centre"
        return f"{kind} {self.owner}'s {self.policy.value} policy"


def applied_policy(
    datacentre: str,
    dc_policy: EvacuationPolicy,
    ministry: str | None,
    ministry_policy: EvacuationPolicy | None,
) -> AppliedPolicy:
    """The ministry's override when it has one, else the data centre's policy."""
    if ministry is not None and ministry_policy is not None:
        return AppliedPolicy(policy=ministry_policy, source="ministry", owner=ministry)
    return AppliedPolicy(policy=dc_policy, source="datacentre", owner=datacentre)


def ministry_of(org_path: str) -> str | None:
    """The ministry code in an organisation path (``gov/moe/naer/...`` -> ``moe``)."""
    parts = org_path.split("/")
    return parts[1] if len(parts) > 1 else None


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
        if self.margin_s <= WATCHDOG_MAX_LAG_S:
            raise ValueError(
                f"the evacuation margin ({self.margin_s} s) must be longer than the fence "
                f"watchdog's lag ({WATCHDOG_MAX_LAG_S} s), or an instance whose agent died "
                "could be restarted elsewhere before its host has destroyed the old copy"
            )
        return self

    @property
    def evacuate_after_s(self) -> float:
        """Silence after which a DOWN host's instances may be restarted elsewhere."""
        return self.fence_after_s + self.margin_s

    def evacuate_before(self, now: datetime) -> datetime:
        """Hosts whose last heartbeat is older than this may be evacuated."""
        return now - timedelta(seconds=self.evacuate_after_s)

    def lease_for(self, policy: EvacuationPolicy, *, ministry_overrides: bool = False) -> float:
        """The ``fence_after_s`` an agent in a data centre with ``policy`` is given; also
        when some ministry forces ``restart-elsewhere`` (``ministry_overrides``): any host
        may run that ministry's instances, and fencing is per host."""
        restart = policy is EvacuationPolicy.RESTART_ELSEWHERE or ministry_overrides
        return self.fence_after_s if restart else 0.0
