"""The trial state machine and the expiry loop's decisions, as pure functions.

::

    requested --approve--> approved --(loop)--> active --(first warning due)--> expiring
        |  \\--reject--> rejected                  ^  \\                          |
        \\--cancel--> cancelled                    |   \\----------(end)---------+--> expired
                                                   +--extension approved-------/       |
                                                                        (grace over)  v
                                                                                    cleaned

* **approved -> active**: the loop's next pass; the TTL counts from activation.
* **warnings** (default 3 days and 1 day before the end) are recorded once each per end
  time; the first one due turns ``active`` into ``expiring``.
* **expired** at the end: the trial's servers are stopped (and kept stopped) and its
  project's limits are frozen at zero.
* **cleaned** once the grace period after the end is over and every server is deleted;
  the final usage record is kept on the trial.
* An **extension** (approved by a lab operator) moves the end; an expired trial still in
  its grace period comes back to life (its servers stay stopped until started).
* **cancel** before approval ends the trial at once (``cancelled``); after it, it ends the
  trial early (``expired`` now, then cleaned after the grace period).

``tick`` is level-based: ticking at ``t1`` then ``t2`` leaves the same state as ticking
at ``t2`` alone, and never repeats a warning.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from controlplane.domain.errors import InvalidState
from controlplane.domain.lab import TrialState, TrialUsage
from controlplane.domain.metering import Interval, Usage

T = TrialState

#: User actions and the states each is accepted in.
ACTIONS: dict[str, frozenset[TrialState]] = {
    "approve": frozenset({T.REQUESTED}),
    "reject": frozenset({T.REQUESTED}),
    "cancel": frozenset({T.REQUESTED, T.APPROVED, T.ACTIVE, T.EXPIRING}),
    "extend": frozenset({T.ACTIVE, T.EXPIRING, T.EXPIRED}),
    "evidence": frozenset({T.APPROVED, T.ACTIVE, T.EXPIRING, T.EXPIRED, T.CLEANED}),
    "signoff": frozenset({T.APPROVED, T.ACTIVE, T.EXPIRING, T.EXPIRED, T.CLEANED}),
}

#: States in which the trial holds an environment (its project and a trial_envs slot).
HOLDS_ENVIRONMENT: frozenset[TrialState] = frozenset({T.APPROVED, T.ACTIVE, T.EXPIRING, T.EXPIRED})
#: States the expiry loop looks at.
LOOP_STATES = HOLDS_ENVIRONMENT
#: States a trial never leaves.
FINAL: frozenset[TrialState] = frozenset({T.CLEANED, T.REJECTED, T.CANCELLED})


def check_action(action: str, state: TrialState, trial_id: str) -> None:
    """Raise InvalidState (``lab.invalid_state``) unless ``action`` is accepted in ``state``."""
    allowed = ACTIONS[action]
    if state not in allowed:
        names = ", ".join(s.value for s in TrialState if s in allowed)
        raise InvalidState(
            f"cannot {action} trial {trial_id} while it is {state.value}; "
            f"{action} is accepted when: {names}",
            code="lab.invalid_state",
            action=action,
            state=state.value,
            allowed=[s.value for s in TrialState if s in allowed],
        )


@dataclass(frozen=True)
class LabPolicy:
    """Timing of the loop's decisions (from Settings)."""

    warnings: tuple[timedelta, ...] = (timedelta(days=3), timedelta(days=1))
    grace: timedelta = timedelta(days=7)
    #: Longest life of a trial from activation, extensions included.
    max_life: timedelta = timedelta(days=90)

    @property
    def leads(self) -> tuple[int, ...]:
        """Warning leads in whole hours, longest first."""
        return tuple(sorted({int(w.total_seconds() // 3600) for w in self.warnings}, reverse=True))


@dataclass(frozen=True)
class Clock:
    """The time-related part of a trial the loop decides on."""

    state: TrialState
    ttl_hours: int
    activated_at: datetime | None = None
    ends_at: datetime | None = None
    #: Warning leads (hours) already recorded for the current ``ends_at``.
    warned: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Warning:
    """A warning to record: the trial ends in ``lead_hours`` (or less)."""

    lead_hours: int
    ends_at: datetime


@dataclass(frozen=True)
class Tick:
    """The outcome of one decision: the new clock and what to record."""

    clock: Clock
    activated: bool = False
    warnings: tuple[Warning, ...] = ()
    expired: bool = False
    transitions: tuple[tuple[TrialState, TrialState], ...] = field(default=())


def state_at(ends_at: datetime, now: datetime, policy: LabPolicy) -> TrialState:
    """The time-driven state of a live trial ending at ``ends_at``."""
    if now >= ends_at:
        return T.EXPIRED
    leads = policy.leads
    if leads and now >= ends_at - timedelta(hours=leads[0]):
        return T.EXPIRING
    return T.ACTIVE


def tick(clock: Clock, now: datetime, policy: LabPolicy) -> Tick:
    """What the expiry loop does to a trial at ``now`` (idempotent, level-based)."""
    start = clock.state
    if start not in (T.APPROVED, T.ACTIVE, T.EXPIRING):
        return Tick(clock)
    activated = False
    if start is T.APPROVED:
        clock = replace(
            clock,
            state=T.ACTIVE,
            activated_at=now,
            ends_at=now + timedelta(hours=clock.ttl_hours),
            warned=frozenset(),
        )
        activated = True
    assert clock.ends_at is not None
    new_state = state_at(clock.ends_at, now, policy)
    warnings: list[Warning] = []
    if new_state is not T.EXPIRED:
        due = [
            lead
            for lead in policy.leads
            if lead not in clock.warned and now >= clock.ends_at - timedelta(hours=lead)
        ]
        # Only the most urgent one when several fell due together (the loop was down).
        if due:
            warnings.append(Warning(min(due), clock.ends_at))
            clock = replace(clock, warned=clock.warned | frozenset(due))
    clock = replace(clock, state=new_state)
    path: list[TrialState] = [start, T.ACTIVE] if activated else [start]
    if new_state is not path[-1]:
        path.append(new_state)
    transitions = tuple(itertools.pairwise(path))
    return Tick(
        clock,
        activated=activated,
        warnings=tuple(warnings),
        expired=new_state is T.EXPIRED,
        transitions=transitions,
    )


def extended(clock: Clock, hours: int, now: datetime, policy: LabPolicy) -> Clock:
    """The clock after an approved extension of ``hours``: from the current end, or from
    ``now`` for an expired trial; warnings start over for the new end."""
    assert clock.ends_at is not None
    base = max(clock.ends_at, now) if clock.state is T.EXPIRED else clock.ends_at
    ends_at = base + timedelta(hours=hours)
    return replace(clock, ends_at=ends_at, state=state_at(ends_at, now, policy), warned=frozenset())


def life_after_extension(clock: Clock, hours: int, now: datetime) -> timedelta:
    """How long the trial would have lived (from activation) after an extension."""
    assert clock.activated_at is not None
    assert clock.ends_at is not None
    base = max(clock.ends_at, now) if clock.state is T.EXPIRED else clock.ends_at
    return base + timedelta(hours=hours) - clock.activated_at


def cleanup_due(
    state: TrialState, ends_at: datetime | None, now: datetime, policy: LabPolicy
) -> bool:
    """Whether an expired trial's grace period is over (its servers are to be deleted)."""
    return state is T.EXPIRED and ends_at is not None and now >= ends_at + policy.grace


def final_usage(intervals: Iterable[Interval], start: datetime, end: datetime) -> TrialUsage:
    """Usage of the trial's project from ``start`` to ``end`` (each server counted once)."""
    total = Usage()
    seen: set[str] = set()
    for interval in intervals:
        used = Usage.of(interval, start, end)
        if used.instances and interval.instance_id in seen:
            used = replace(used, instances=0)
        if used.instances:
            seen.add(interval.instance_id)
        total = total + used
    return TrialUsage(
        start=start,
        end=end,
        instances=total.instances,
        instance_hours=round(float(total.instance_hours), 6),
        vcpu_hours=round(float(total.vcpu_hours), 6),
        ram_gib_hours=round(float(total.ram_gib_hours), 6),
        disk_gib_hours=round(float(total.disk_gib_us) / 3_600_000_000, 6),
    )
