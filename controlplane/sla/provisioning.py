"""Provisioning time: from the API accepting a create to the instance's first RUNNING.

An instance whose first state after acceptance that is ``ERROR`` or ``RUNNING`` is
``ERROR`` is a **failed provisioning**; one deleted before it ran, without an error, was
cancelled by its tenant and counts neither way; one still on its way is *in progress*.
Percentiles use the nearest-rank method (the smallest time that at least ``q`` % of the
launches did not exceed), so every reported figure is a real launch's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from controlplane.sla.history import ERROR, GONE, RUNNING, InstanceHistory


class Outcome(StrEnum):
    """How a provisioning ended (so far)."""

    LAUNCHED = "launched"
    FAILED = "failed"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Provisioning:
    """One create request's fate."""

    instance_id: str
    accepted_at: datetime
    outcome: Outcome
    #: First RUNNING (launched) or first ERROR (failed).
    ended_at: datetime | None = None

    @property
    def duration(self) -> timedelta | None:
        """Accepted -> first RUNNING, for launched instances."""
        if self.outcome is Outcome.LAUNCHED and self.ended_at is not None:
            return self.ended_at - self.accepted_at
        return None


def provisioning(history: InstanceHistory) -> Provisioning:
    """How ``history``'s instance was provisioned."""
    for ev in history.events:
        if ev.state == RUNNING:
            return Provisioning(history.instance_id, history.created_at, Outcome.LAUNCHED, ev.at)
        if ev.state == ERROR:
            return Provisioning(history.instance_id, history.created_at, Outcome.FAILED, ev.at)
        if ev.state in GONE:
            return Provisioning(history.instance_id, history.created_at, Outcome.CANCELLED, ev.at)
    return Provisioning(history.instance_id, history.created_at, Outcome.IN_PROGRESS)


def accepted_in(
    histories: Iterable[InstanceHistory], lo: datetime, hi: datetime
) -> list[Provisioning]:
    """The provisionings of the instances created in ``[lo, hi)``."""
    return [provisioning(h) for h in histories if lo <= h.created_at < hi]


def percentile(values: Sequence[timedelta], q: float) -> timedelta | None:
    """Nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
