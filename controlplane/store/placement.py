"""Atomic host claims: the scheduler proposes, this module commits.

A claim is one conditional UPDATE that adds the instance's resources to the host's ``used``
columns only if every dimension still fits under ``usable`` and the host is still active.
On PostgreSQL (READ COMMITTED) a concurrent UPDATE of the same row waits and then re-checks
the WHERE clause against the committed row, so no interleaving can overcommit a host; on
SQLite, writers are serialised by ``BEGIN IMMEDIATE``. A claim that no longer fits raises
``PlacementConflict`` and the caller re-snapshots and re-selects, a bounded number of times.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from controlplane.domain.errors import Conflict
from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources
from controlplane.store.tables import HostRow


class PlacementConflict(Conflict):
    """The chosen host filled up (or changed state) after the snapshot: re-select."""

    code = "placement.conflict"


def claim(session: Session, host_id: str, amount: Resources) -> None:
    """Add ``amount`` to the host's usage if it still fits, else raise Conflict."""
    result = session.execute(
        update(HostRow)
        .where(
            HostRow.id == host_id,
            HostRow.state == HostState.ACTIVE.value,
            HostRow.used_vcpus + amount.vcpus <= HostRow.usable_vcpus,
            HostRow.used_ram_mib + amount.ram_mib <= HostRow.usable_ram_mib,
            HostRow.used_disk_gib + amount.disk_gib <= HostRow.usable_disk_gib,
        )
        .values(
            used_vcpus=HostRow.used_vcpus + amount.vcpus,
            used_ram_mib=HostRow.used_ram_mib + amount.ram_mib,
            used_disk_gib=HostRow.used_disk_gib + amount.disk_gib,
            generation=HostRow.generation + 1,
            assign_generation=HostRow.assign_generation + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise PlacementConflict(f"host {host_id} changed since the snapshot", host=host_id)


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
