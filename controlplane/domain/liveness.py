"""Host liveness: when missing heartbeats make a host SUSPECT, then DOWN (pure rules).

A host reports every ``heartbeat_interval_s``. With the defaults (heartbeat every 4 s,
SUSPECT after 8 s, DOWN after 12 s, the liveness loop sweeping every second) a dead host
is DOWN at most ~13 s after its last heartbeat: inside the 15 s the programme asks for
(Nova's ``service_down_time`` is 60 s). SUSPECT is a warning only: the host takes no new
placements but its instances keep their state. DOWN makes its instances UNKNOWN, which
the SLA counts as downtime. Only hosts the operator left ACTIVE (or DRAINING) are
watched: a host in MAINTENANCE or DISABLED is expected to go quiet.

A host keeps its administrative state through an outage: the state it had when it first
went SUSPECT or DOWN is remembered (:func:`remembered`) and its next heartbeat returns it
there (:func:`returns_to`), so a DRAINING host comes back DRAINING (its drain carries on)
and never silently takes placements again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.host import LIVENESS_STATES, HostState

#: States in which missing heartbeats are noticed.
WATCHED: frozenset[HostState] = frozenset({HostState.ACTIVE, HostState.SUSPECT, HostState.DRAINING})


class LivenessPolicy(BaseModel):
    """How long a silent host stays trusted."""

    model_config = ConfigDict(frozen=True)

    suspect_after_s: float = Field(8.0, gt=0)
    down_after_s: float = Field(12.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LivenessPolicy:
        if self.down_after_s <= self.suspect_after_s:
            raise ValueError(
                f"down_after_s ({self.down_after_s}) must be longer than suspect_after_s "
                f"({self.suspect_after_s})"
            )
        return self

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """Heartbeats older than these make a host (SUSPECT, DOWN)."""
        return (
            now - timedelta(seconds=self.suspect_after_s),
            now - timedelta(seconds=self.down_after_s),
        )


def assess(
    state: HostState, last_heartbeat: datetime | None, now: datetime, policy: LivenessPolicy
) -> HostState | None:
    """The state a host should move to now, or None to leave it as it is."""
    if state not in WATCHED or last_heartbeat is None:
        return None
    suspect_before, down_before = policy.cutoffs(now)
    if last_heartbeat < down_before:
        return HostState.DOWN
    if last_heartbeat < suspect_before and state is HostState.ACTIVE:
        return HostState.SUSPECT
    return None


def remembered(state: HostState, recorded: HostState | None) -> HostState | None:
    """What to remember when the liveness loop moves a host out of ``state``: the state
    itself while it is administrative, else what was already recorded."""
    return recorded if state in LIVENESS_STATES else state


def returns_to(recorded: HostState | None) -> HostState:
    """Where a SUSPECT/DOWN host goes on its next heartbeat (ACTIVE if nothing was
    recorded, e.g. rows from before the state was remembered)."""
    if recorded is None or recorded in LIVENESS_STATES:
        return HostState.ACTIVE
    return recorded
