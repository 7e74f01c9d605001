"""Scenario-run measurements: statistics of samples and the decisions of a run (pure).

* :func:`stat` -- peak, p95 (nearest rank) and mean of a series;
* :func:`group_usage` -- per group, the statistics of CPU, RAM and disk over every sample
  of every VM of the group (so p95 is over VM-samples);
* :func:`to_measurements` -- a run's summary as :class:`controlplane.planner.sizing
  .Measurements`, the input of ``govcloud lab size``;
* :func:`next_state` -- what a run does next, from how far its VMs got and the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from controlplane.lab.scenario import RunState
from controlplane.planner.sizing import (
    FlavorSize,
    MeasuredGroup,
    Measurements,
    Utilisation,
)


class Stat(BaseModel):
    """Peak, 95th percentile and mean of a series (0 for an empty one)."""

    peak: float = 0.0
    p95: float = 0.0
    mean: float = 0.0
    samples: int = 0


def stat(values: Iterable[float]) -> Stat:
    """Peak, nearest-rank p95 and mean of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return Stat()
    rank = max(1, math.ceil(0.95 * len(ordered)))
    mean = round(sum(ordered) / len(ordered), 6)
    p95 = ordered[rank - 1]
    return Stat(
        peak=ordered[-1],
        p95=p95,
        mean=min(mean, p95),  # nearest rank can fall below the mean on tiny series
        samples=len(ordered),
    )


class GroupUsage(BaseModel):
    """A group's measured utilisation (fractions of its flavor) and provisioning."""

    group: str
    flavor: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    requested: int
    running: int = Field(description="VMs that reached RUNNING")
    failed: int
    provision_s: Stat = Field(description="seconds from request to RUNNING")
    cpu: Stat
    ram: Stat
    disk: Stat


@dataclass(frozen=True)
class Sample:
    """One stored sample."""

    group: str
    cpu: float
    ram: float
    disk: float


def group_usage(
    group: str,
    flavor: tuple[str, int, int, int],
    requested: int,
    provision_s: Sequence[float],
    failed: int,
    samples: Sequence[Sample],
) -> GroupUsage:
    """The summary of one group."""
    name, vcpus, ram_mib, disk_gib = flavor
    mine = [s for s in samples if s.group == group]
    return GroupUsage(
        group=group,
        flavor=name,
        vcpus=vcpus,
        ram_mib=ram_mib,
        disk_gib=disk_gib,
        requested=requested,
        running=len(provision_s),
        failed=failed,
        provision_s=stat(provision_s),
        cpu=stat(s.cpu for s in mine),
        ram=stat(s.ram for s in mine),
        disk=stat(s.disk for s in mine),
    )


def _util(s: Stat) -> Utilisation:
    return Utilisation(peak=s.peak, p95=s.p95, mean=s.mean)


def to_measurements(workload: str, groups: Sequence[GroupUsage]) -> Measurements:
    """The run's groups as sizing input (a group's count is what it asked for)."""
    return Measurements(
        workload=workload,
        groups=[
            MeasuredGroup(
                name=g.group,
                count=g.requested,
                flavor=FlavorSize(
                    name=g.flavor, vcpus=g.vcpus, ram_mib=g.ram_mib, disk_gib=g.disk_gib
                ),
                cpu=_util(g.cpu),
                ram=_util(g.ram),
                disk=_util(g.disk),
            )
            for g in groups
        ],
    )


@dataclass(frozen=True)
class Progress:
    """How far a run's VMs got (counts over every VM of the run)."""

    total: int
    running: int
    failed: int
    gone: int = 0  # deleted (cleaning / cancelling)


def next_state(
    state: RunState,
    progress: Progress,
    now: datetime,
    *,
    created_at: datetime,
    load_started_at: datetime | None,
    duration_s: float,
    provision_timeout_s: float,
) -> RunState:
    """The state a run moves to at ``now`` (the same state when nothing is due)."""
    if state is RunState.PROVISIONING:
        if progress.total and progress.failed >= progress.total:
            return RunState.CANCELLING  # nothing to load: remove what is left
        settled = progress.running + progress.failed >= progress.total
        late = now >= created_at + timedelta(seconds=provision_timeout_s)
        return RunState.LOADING if settled or late else state
    if state is RunState.LOADING:
        assert load_started_at is not None
        done = now >= load_started_at + timedelta(seconds=duration_s)
        return RunState.CLEANING if done else state
    if state in (RunState.CLEANING, RunState.CANCELLING) and progress.gone >= progress.total:
        return RunState.COMPLETED if state is RunState.CLEANING else RunState.CANCELLED
    return state
