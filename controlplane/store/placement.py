"""Atomic host claims: the scheduler proposes, this module commits.

A claim is one conditional UPDATE that adds the instance's resources to the host's ``used``
columns only if every dimension still fits under ``usable``, the host is still active and
so is its data centre; it returns the host's new row (for the caller's fleet index).
On PostgreSQL (READ COMMITTED) a concurrent UPDATE of the same row waits and then re-checks
the WHERE clause against the committed row, so no interleaving can overcommit a host; on
SQLite, writers are serialised by ``BEGIN IMMEDIATE``. A claim that no longer fits raises
``PlacementConflict`` and the caller re-snapshots and re-selects, a bounded number of times.

A resize changes an existing claim in place (``resize_claim``): the same conditional UPDATE
with the difference between the sizes, checked only in the dimensions that grow.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, select, update
from sqlalchemy.orm import Session

from controlplane.domain.datacentre import DataCentreState
from controlplane.domain.errors import Conflict, InvalidState
from controlplane.domain.host import HostState
from controlplane.domain.resources import DIMENSIONS, UNITS, Resources
from controlplane.scheduler.view import HostView
from controlplane.store.fleet_index import FLEET_COLUMNS, host_view
from controlplane.store.tables import DataCentreRow, HostRow


class PlacementConflict(Conflict):
    """The chosen host filled up (or changed state) after the snapshot: re-select."""

    code = "placement.conflict"


class InsufficientCapacity(InvalidState):
    """The instance's host cannot hold the larger size (a resize never moves an instance)."""

    code = "host.insufficient_capacity"


#: The claim statement, built once (the hot path pays no statement construction).
_CLAIM = (
    update(HostRow)
    .where(
        HostRow.id == bindparam("claim_host"),
        HostRow.state == HostState.ACTIVE.value,
        HostRow.used_vcpus + bindparam("claim_vcpus") <= HostRow.usable_vcpus,
        HostRow.used_ram_mib + bindparam("claim_ram_mib") <= HostRow.usable_ram_mib,
        HostRow.used_disk_gib + bindparam("claim_disk_gib") <= HostRow.usable_disk_gib,
        exists().where(
            DataCentreRow.code == HostRow.datacentre,
            DataCentreRow.state == DataCentreState.ACTIVE.value,
        ),
    )
    .values(
        used_vcpus=HostRow.used_vcpus + bindparam("claim_vcpus"),
        used_ram_mib=HostRow.used_ram_mib + bindparam("claim_ram_mib"),
        used_disk_gib=HostRow.used_disk_gib + bindparam("claim_disk_gib"),
        generation=HostRow.generation + 1,
        assign_generation=HostRow.assign_generation + 1,
    )
    .returning(*FLEET_COLUMNS)
    .execution_options(synchronize_session=False)
)


def claim(session: Session, host_id: str, amount: Resources) -> HostView:
    """Add ``amount`` to the host's usage if it still fits, the host is ACTIVE and its data
    centre takes placements, else raise PlacementConflict; returns the host's new row."""
    row = (
        session.connection()
        .execute(  # Core: no ORM bookkeeping for this UPDATE
            _CLAIM,
            {
                "claim_host": host_id,
                "claim_vcpus": amount.vcpus,
                "claim_ram_mib": amount.ram_mib,
                "claim_disk_gib": amount.disk_gib,
            },
        )
        .one_or_none()
    )
    if row is None:
        raise PlacementConflict(f"host {host_id} changed since the snapshot", host=host_id)
    return host_view(row, datacentre_active=True)


def release(session: Session, host_id: str, amount: Resources) -> None:
    """Give ``amount`` back to the host (an instance was deleted)."""
    session.execute(
        update(HostRow)
        .where(HostRow.id == host_id)
        .values(
            used_vcpus=HostRow.used_vcpus - amount.vcpus,
            used_ram_mib=HostRow.used_ram_mib - amount.ram_mib,
            used_disk_gib=HostRow.used_disk_gib - amount.disk_gib,
            generation=HostRow.generation + 1,
        )
        .execution_options(synchronize_session=False)
    )


def resize_claim(session: Session, host_id: str, old: Resources, new: Resources) -> None:
    """Change a claim of ``old`` on ``host_id`` to ``new``, or raise InsufficientCapacity.

    One conditional UPDATE adds ``new - old`` (negative where the size shrinks); only the
    dimensions that grow must still fit under ``usable``, and only then must the host be
    ACTIVE (a shrink always succeeds). If the UPDATE matches nothing, the host row is read
    under a lock to name each dimension that does not fit; if a concurrent release made
    room meanwhile, the UPDATE is repeated under that lock, where it cannot fail.
    """
    delta = {d: getattr(new, d) - getattr(old, d) for d in DIMENSIONS}
    grows = [d for d in DIMENSIONS if delta[d] > 0]
    used = {d: getattr(HostRow, f"used_{d}") for d in DIMENSIONS}
    conditions: list[ColumnElement[bool]] = [
        used[d] + delta[d] <= getattr(HostRow, f"usable_{d}") for d in grows
    ]
    if grows:
        conditions.append(HostRow.state == HostState.ACTIVE.value)
    statement = (
        update(HostRow)
        .where(HostRow.id == host_id, *conditions)
        .values(
            **{f"used_{d}": used[d] + delta[d] for d in DIMENSIONS},
            generation=HostRow.generation + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount == 1:  # type: ignore[attr-defined]
        return
    host = session.scalar(
        select(HostRow)
        .where(HostRow.id == host_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if host is None:
        raise InsufficientCapacity(f"host {host_id} no longer exists", host=host_id)
    short: list[dict[str, Any]] = []
    for d in grows:
        now_used, usable = getattr(host, f"used_{d}"), getattr(host, f"usable_{d}")
        if now_used + delta[d] > usable:
            short.append(
                {
                    "dimension": d,
                    "used": now_used,
                    "current": getattr(old, d),
                    "requested": getattr(new, d),
                    "usable": usable,
                }
            )
    if host.state != HostState.ACTIVE.value or short:
        problems = [
            f"{s['dimension']}: {s['used']} used, {s['current']} -> {s['requested']} needs "
            f"{s['used'] - s['current'] + s['requested']} > {s['usable']} usable "
            f"({UNITS[s['dimension']]})"
            for s in short
        ]
        if host.state != HostState.ACTIVE.value:
            problems.insert(0, f"the host is {host.state} and takes no larger claims")
        raise InsufficientCapacity(
            f"host {host.name} cannot hold the new size: {'; '.join(problems)}. Choose a "
            "smaller flavor, or free room on the host (a resize stays on its host)",
            host=host.name,
            host_state=host.state,
            dimensions=short,
        )
    retried = session.execute(statement).rowcount  # type: ignore[attr-defined]
    assert retried == 1, "the locked host row fits but the UPDATE did not match"
