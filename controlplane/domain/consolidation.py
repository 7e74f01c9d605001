"""Consolidation for energy (pure models): host power models, the planner's input
snapshot, the plan it returns, and a stored consolidation with its progress.

A **plan** empties lightly loaded ACTIVE hosts of one data centre onto the others by live
migration, never exceeding any host's usable capacity (or the ``max_fill`` share of it on
receiving hosts), never breaking a hard server-group rule, and keeps ``reserve`` empty
hosts powered on as spares. The emptied hosts beyond the spares are *freed*: they end in
MAINTENANCE ("powered down for consolidation") so the scheduler skips them.

**Power** of a host at CPU utilisation ``u`` (allocated vCPUs / usable vCPUs, 0..1) is
``idle + (peak - idle) * u``, the usual first-order server model; a freed host counts
0 W. Hosts without a power model use :data:`DEFAULT_POWER` and the plan says so.

A stored **consolidation** executes a plan step by step (one migration per step, at most
``max_parallel`` at a time); each step is re-validated before it starts and skipped with a
reason if the fleet changed. States::

    RUNNING <--pause/resume--> PAUSED
       |                          |
       +--> DONE      CANCELLED <-+
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.errors import InvalidRequest
from controlplane.domain.host import Host
from controlplane.domain.migration import DEFAULT_MAX_PARALLEL, MAX_PARALLEL_LIMIT
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy

#: Upper bound for a host's idle or peak draw (W).
MAX_WATTS = 20_000.0
#: Hours in an average month (8,760 / 12), for kWh per month.
HOURS_PER_MONTH = 730.0
DEFAULT_RESERVE = 1
MAX_RESERVE = 1000


class PowerModel(BaseModel):
    """A host's draw when idle and at full CPU load (W)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_watts: float = Field(ge=0, le=MAX_WATTS)
    peak_watts: float = Field(gt=0, le=MAX_WATTS)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.peak_watts < self.idle_watts:
            raise ValueError(
                f"peak_watts ({self.peak_watts:g}) must be at least idle_watts "
                f"({self.idle_watts:g})"
            )
        return self

    def watts(self, utilisation: float) -> float:
        """Draw at ``utilisation`` (0..1 of the CPU; clamped)."""
        u = min(1.0, max(0.0, utilisation))
        return self.idle_watts + (self.peak_watts - self.idle_watts) * u


#: Used for hosts without a power model: a typical 2-socket 1U server.
DEFAULT_POWER = PowerModel(idle_watts=150.0, peak_watts=450.0)


class ConsolidationParams(BaseModel):
    """How to consolidate (``dc consolidate`` options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reserve: int = Field(
        DEFAULT_RESERVE, ge=0, le=MAX_RESERVE, description="empty active hosts kept on as spares"
    )
    max_fill: float = Field(
        1.0,
        gt=0,
        le=1.0,
        description="receiving hosts are filled to at most this share of usable, per dimension",
    )
    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=MAX_PARALLEL_LIMIT)


# -- the planner's input ------------------------------------------------------------------


class PlanHost(BaseModel):
    """One host of the data centre as the planner sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    state: str
    usable: Resources
    #: What is claimed on the host (instances, and moves in flight towards it).
    used: Resources
    traits: frozenset[str] = frozenset()
    power: PowerModel | None = None


class PlanInstance(BaseModel):
    """One live instance placed on a host of the data centre."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    host_id: str
    state: str
    size: Resources
    group_id: str | None = None
    group_name: str = ""
    group_policy: GroupPolicy | None = None
    #: Anti-affinity: members one host may hold (None: 1).
    max_per_host: int | None = None
    #: Live members of the group (all hosts).
    group_members: int = 1
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()


# -- the plan -------------------------------------------------------------------------------


class Move(BaseModel):
    """One live migration of the plan, in execution order."""

    seq: int
    instance_id: str
    instance_name: str
    source: str
    source_id: str
    target: str
    target_id: str
    size: Resources


class HostAction(StrEnum):
    """What the plan does with a host."""

    POWER_OFF = "power-off"
    SPARE = "spare"
    RECEIVE = "receive"
    KEEP = "keep"
    EXCLUDED = "excluded"


class HostPlan(BaseModel):
    """One host before and after the plan."""

    id: str
    name: str
    state: str
    action: HostAction
    instances_before: int
    instances_after: int
    usable: Resources
    used_before: Resources
    used_after: Resources
    watts_before: float
    watts_after: float
    #: True when the host has no power model and the default was used.
    power_estimated: bool
    #: Why the host is not freed (empty for freed hosts).
    reason: str = ""


class ConsolidationPlan(BaseModel):
    """Moves, hosts freed and power before/after for one data centre."""

    datacentre: str
    params: ConsolidationParams
    moves: list[Move]
    hosts: list[HostPlan]
    freed: list[str] = Field(description="hosts powered down once empty")
    spares: list[str] = Field(description="empty hosts kept on (the reserve)")
    not_freed: dict[str, str] = Field(description="host -> why it is not freed")
    watts_before: float
    watts_after: float
    watts_saved: float
    kwh_month_saved: float
    power_estimated_hosts: list[str] = Field(
        description="hosts without a power model (the default was used)"
    )
    default_power: PowerModel = DEFAULT_POWER
    strategy: str
    baseline_freed: int = Field(description="hosts the first-fit baseline would free")


# -- a stored consolidation -----------------------------------------------------------------


class ConsolidationState(StrEnum):
    """Whether a consolidation is still moving instances."""

    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


#: States in which a consolidation holds its data centre (one at a time).
OPEN_STATES: frozenset[ConsolidationState] = frozenset(
    {ConsolidationState.RUNNING, ConsolidationState.PAUSED}
)


class StepState(StrEnum):
    """Where one move of a stored plan is."""

    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


FINAL_STEP_STATES: frozenset[StepState] = frozenset(
    {StepState.DONE, StepState.SKIPPED, StepState.FAILED}
)


class Step(BaseModel):
    """One move being executed."""

    seq: int
    instance_id: str
    instance_name: str
    source: str
    target: str
    state: StepState
    migration_id: str | None = None
    message: str = ""


class HostOutcome(StrEnum):
    """Where a host to be freed (or a spare being emptied) is."""

    EMPTYING = "emptying"
    POWERED_DOWN = "powered-down"
    SPARE = "spare"
    KEPT = "kept-on"


class ConsolidationHost(BaseModel):
    """A host the consolidation empties."""

    name: str
    id: str
    action: HostAction
    outcome: HostOutcome
    message: str = ""


class Consolidation(BaseModel):
    """A stored plan being executed, with its progress."""

    id: str
    datacentre: str
    state: ConsolidationState
    params: ConsolidationParams
    plan: ConsolidationPlan
    steps: list[Step]
    hosts: list[ConsolidationHost]
    total: int
    done: int
    in_flight: int
    pending: int
    skipped: int
    failed: int
    powered_down: int
    message: str = ""
    created_by: str
    started_at: datetime
    finished_at: datetime | None = None


def powered_down_note(consolidation_id: str) -> str:
    """The host note of a host freed by a consolidation."""
    return f"powered down for consolidation {consolidation_id}"


def emptying_note(consolidation_id: str) -> str:
    """The host note while a consolidation empties it."""
    return f"being emptied by consolidation {consolidation_id}"


def power_update(host: Host, idle: float | None, peak: float | None) -> PowerModel | None:
    """The power model after setting ``idle`` and/or ``peak`` on ``host`` (None: neither
    given). A host without a model needs both; peak must not fall below idle."""
    if idle is None and peak is None:
        return None
    idle = host.idle_watts if idle is None else idle
    peak = host.peak_watts if peak is None else peak
    if idle is None or peak is None:
        missing = "idle_watts" if idle is None else "peak_watts"
        raise InvalidRequest(
            f"host {host.name} has no power model yet: give both idle_watts and peak_watts "
            f"(--idle-watts and --peak-watts); {missing} is missing",
            field=missing,
            value=None,
        )
    if peak < idle:
        raise InvalidRequest(
            f"peak_watts ({peak:g}) must be at least idle_watts ({idle:g}) on host {host.name}",
            field="peak_watts",
            limit=idle,
            value=peak,
        )
    return PowerModel(idle_watts=idle, peak_watts=peak)
