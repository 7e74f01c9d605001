"""Instances (VMs) and their state machine.

States::

    PENDING -> SCHEDULED -> BUILDING -> RUNNING <-> STOPPED
       |           |            |          |           |
       +-----------+------------+----------+-----------+--> DELETING -> DELETED
    any live state -> ERROR (agent reported a failure, or the domain vanished)
    any placed state -> UNKNOWN (its host went DOWN) -> what the agent reports on return,
                                                     or PENDING (evacuated: re-placed)

``desired_power`` and ``reboot_seq`` carry the user's intent; the agent converges the
host to them and reports what it sees, which moves ``state``.

**Resize** changes a STOPPED instance's flavor in place, on the host it already has (a
cold resize without migration): the store moves the quota and host usage by the
difference at request time, and the agent redefines the shut-off domain with the new
vCPU and memory sizes. The action finishes when the agent reports the domain with the
instance's sizes. The state stays STOPPED throughout.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.errors import InvalidState
from controlplane.domain.names import Code, Name
from controlplane.domain.resources import Resources


class InstanceState(StrEnum):
    """Lifecycle state of an instance."""

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    BUILDING = "BUILDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ERROR = "ERROR"
    #: The instance's host is DOWN: nobody knows whether it runs (the SLA counts it down).
    UNKNOWN = "UNKNOWN"
    #: Moving to another host (live migration, or a cold move across data centres); it
    #: holds a claim on both hosts until the move finishes or rolls back (see
    #: ``domain/migration.py``). The SLA counts it as running.
    MIGRATING = "MIGRATING"
    DELETING = "DELETING"
    DELETED = "DELETED"


class PowerIntent(StrEnum):
    """What the user wants the VM's power to be."""

    RUNNING = "running"
    STOPPED = "stopped"


S = InstanceState
TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.DELETED, S.ERROR}),
    S.SCHEDULED: frozenset({S.BUILDING, S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN, S.DELETING}),
    S.BUILDING: frozenset({S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN, S.DELETING}),
    S.RUNNING: frozenset({S.STOPPED, S.ERROR, S.UNKNOWN, S.DELETING, S.MIGRATING}),
    S.STOPPED: frozenset({S.RUNNING, S.ERROR, S.UNKNOWN, S.DELETING, S.MIGRATING}),
    S.MIGRATING: frozenset({S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN}),
    S.ERROR: frozenset({S.RUNNING, S.STOPPED, S.UNKNOWN, S.DELETING}),
    # PENDING: evacuated from a DOWN host, waiting for the scheduler to re-place it.
    S.UNKNOWN: frozenset({S.PENDING, S.BUILDING, S.RUNNING, S.STOPPED, S.ERROR, S.DELETING}),
    S.DELETING: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}

#: The user actions and the states each is accepted in.
ACTION_ALLOWED: dict[str, frozenset[InstanceState]] = {
    "start": frozenset({S.STOPPED}),
    "stop": frozenset({S.RUNNING, S.BUILDING, S.SCHEDULED}),
    "reboot": frozenset({S.RUNNING}),
    "resize": frozenset({S.STOPPED}),
    "delete": frozenset(
        {S.PENDING, S.SCHEDULED, S.BUILDING, S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN}
    ),
}

#: States in which an instance holds a claim on a host.
CLAIMING: frozenset[InstanceState] = frozenset(
    {S.SCHEDULED, S.BUILDING, S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN, S.DELETING, S.MIGRATING}
)


def can_transition(current: InstanceState, new: InstanceState) -> bool:
    """Whether the state machine allows ``current -> new`` (staying put is allowed)."""
    return new == current or new in TRANSITIONS[current]


def check_action(action: str, state: InstanceState, instance_id: str) -> None:
    """Raise InvalidState unless ``action`` is accepted in ``state``."""
    allowed = ACTION_ALLOWED[action]
    if state not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise InvalidState(
            f"cannot {action} instance {instance_id} in state {state.value}; "
            f"{action} is accepted in: {names}",
            code="instance.invalid_state",
            action=action,
            state=state.value,
            allowed=sorted(s.value for s in allowed),
        )


#: Rejected hosts kept as examples per check in an explanation (the rest are only counted).
EXAMPLES_PER_CHECK = 5


class HostRejection(BaseModel):
    """One host a check turned down, and why."""

    host: str
    check: str
    reason: str


class PlacementExplanation(BaseModel):
    """What the scheduler did for one decision, bounded in size whatever the fleet.

    ``rejected`` counts the hosts each check turned down (each host is counted by the
    first check it failed, checks run cheapest first); ``examples`` holds at most
    :data:`EXAMPLES_PER_CHECK` hosts per check with the reason; ``capacity_short`` counts,
    per dimension, the hosts the capacity check found short of it; ``fits_when_free``
    counts the hosts that were only full (the request would fit there once room frees).
    """

    outcome: str
    message: str
    policy: str
    seed: int = 0
    requested: int = 1
    placed: int = 0
    evaluated: int = 0
    feasible: int = 0
    datacentre: str | None = None
    group: str | None = None
    rejected: dict[str, int] = {}
    examples: list[HostRejection] = []
    capacity_short: dict[str, int] = {}
    fits_when_free: int = 0
    hosts: list[str] = []


class NoValidHost(InvalidState):
    """An all-or-nothing multi-instance request cannot be placed whole: nothing is stored."""

    code = "placement.no_valid_host"


class Instance(BaseModel):
    """A VM as the control plane knows it."""

    id: str
    name: Name
    project: Code
    org_path: str
    flavor: Name
    image: Name
    resources: Resources
    datacentre: Code | None
    requested_datacentre: Code | None = None
    host: str | None = None
    host_name: str | None = None
    state: InstanceState
    desired_power: PowerIntent = PowerIntent.RUNNING
    reboot_seq: int = 0
    pending_reason: str | None = None
    fault: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None = None
    #: The server group (id) the instance belongs to, if any.
    server_group: str | None = None
    #: The last placement decision about this instance and why (see ``server why``).
    placement: PlacementExplanation | None = None


class InstanceAction(BaseModel):
    """One entry of an instance's action history (like Nova's instance actions)."""

    id: int
    instance_id: str
    action: str
    request_id: str
    actor: str
    started_at: datetime
    finished_at: datetime | None = None
    result: str = "pending"  # pending | success | error | cancelled
    message: str = ""


def action_outcome(
    action: str,
    state: InstanceState,
    reboot_applied: int,
    reboot_target: int,
    *,
    resized: bool = False,
) -> str | None:
    """Whether a pending ``action`` is now finished: ``success``, ``error``, ``cancelled``
    (the instance was deleted first) or None (not yet).

    ``resized``: the agent reported the domain with the instance's current vCPU and memory
    sizes (what completes a resize).
    """
    if state is S.ERROR:
        return "error"
    if state is S.DELETED and action != "delete":
        return "cancelled"
    done = {
        "create": state in (S.RUNNING, S.STOPPED),
        "start": state is S.RUNNING,
        "stop": state is S.STOPPED,
        "reboot": state is S.RUNNING and reboot_applied >= reboot_target,
        "resize": state in (S.STOPPED, S.RUNNING) and resized,
        "delete": state is S.DELETED,
        "evacuate": state in (S.RUNNING, S.STOPPED),
    }
    return "success" if done.get(action, False) else None
