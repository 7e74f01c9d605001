"""The agent side of instances: what a host must run (assignments, with
migration orders) and the statuses its agent reports.

The assignment list is read on every long-poll answer and status report, so its queries
are built once and read only the columns an assignment needs (no ORM entities).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    ImageSpec,
    InstanceStatus,
    MigrationOrder,
)
from controlplane.domain.errors import NotFound
from controlplane.domain.instance import (
    InstanceState,
    can_transition,
)
from controlplane.store import migration, quota
from controlplane.store.host import bump_assignments
from controlplane.store.instance_base import InstanceBase, S, resources_of
from controlplane.store.placement import release
from controlplane.store.tables import (
    HostRow,
    ImageRow,
    InstanceRow,
)

log = logging.getLogger(__name__)


#: Agent observations -> the instance state they mean.
OBSERVED: dict[ActualState, InstanceState] = {
    ActualState.BUILDING: S.BUILDING,
    ActualState.RUNNING: S.RUNNING,
    ActualState.STOPPED: S.STOPPED,
    ActualState.ERROR: S.ERROR,
}


#: The columns of an assignment: the instance's and its image's.
_ASSIGNED = select(
    InstanceRow.id,
    InstanceRow.name,
    InstanceRow.flavor,
    InstanceRow.vcpus,
    InstanceRow.ram_mib,
    InstanceRow.disk_gib,
    InstanceRow.state,
    InstanceRow.desired_power,
    InstanceRow.reboot_seq,
    ImageRow.name.label("image_name"),
    ImageRow.format.label("image_format"),
    ImageRow.path.label("image_path"),
    ImageRow.kernel_path.label("image_kernel_path"),
    ImageRow.initrd_path.label("image_initrd_path"),
    ImageRow.cmdline.label("image_cmdline"),
).join(ImageRow, ImageRow.name == InstanceRow.image)
#: The instances a host holds, oldest first.
_HELD = _ASSIGNED.where(
    InstanceRow.host_id == bindparam("host_id"), InstanceRow.state != S.DELETED.value
).order_by(InstanceRow.created_at)
_ASSIGN_GENERATION = select(HostRow.assign_generation).where(HostRow.id == bindparam("host_id"))


@dataclass
class StatusOutcome:
    """What a status report did: instances whose state changed, claims released,
    reports ignored because the instance is not on the reporting host, and (when asked
    for and something changed) the host's assignments afterwards."""

    changed: list[str] = field(default_factory=list)
    released: int = 0
    ignored: list[str] = field(default_factory=list)
    assignments: AssignmentList | None = None


class InstanceAgentSide(InstanceBase):
    """``assignments``, ``assignment_generation`` and ``apply_status``."""

    # -- agent side ---------------------------------------------------------------------

    def assignments(self, host_id: str) -> AssignmentList:
        """What the agent of ``host_id`` must run, at the host's assignment generation."""
        with self.db.read() as session:
            return self._assignments(session, host_id)

    @staticmethod
    def _assignments(session: Session, host_id: str) -> AssignmentList:
        session.flush()  # the reads below go straight to the connection
        connection = session.connection()
        generation = connection.execute(_ASSIGN_GENERATION, {"host_id": host_id}).scalar()
        if generation is None:
            raise NotFound("host", host_id)
        rows = connection.execute(_HELD, {"host_id": host_id}).all()
        return AssignmentList(
            host_id=host_id,
            generation=generation,
            assignments=_with_migrations(session, host_id, rows),
        )

    def assignment_generation(self, host_id: str) -> int:
        """The long-poll key of ``host_id``."""
        with self.db.read() as session:
            generation = (
                session.connection().execute(_ASSIGN_GENERATION, {"host_id": host_id}).scalar()
            )
            if generation is None:
                raise NotFound("host", host_id)
            return int(generation)

    def apply_status(
        self, host_id: str, statuses: builtins.list[InstanceStatus], *, then_list: bool = False
    ) -> StatusOutcome:
        """Move instances to what the agent observed (only instances on ``host_id``), one
        transaction per instance. With ``then_list``, a report that changed something
        also reads the host's assignments afterwards, in its last transaction."""
        outcome = StatusOutcome()
        last = len(statuses) - 1
        for index, status in enumerate(statuses):
            with self.db.transaction() as session:
                self._apply_one(session, host_id, status, outcome)
                if then_list and index == last and outcome.changed:
                    outcome.assignments = self._assignments(session, host_id)
        return outcome

    def _apply_one(
        self, session: Session, host_id: str, status: InstanceStatus, outcome: StatusOutcome
    ) -> None:
        row = session.get(InstanceRow, status.instance_id, with_for_update=True)
        if (
            row is not None
            and row.state == S.MIGRATING.value
            and migration.observe(session, self.clock(), row, host_id, status)
        ):
            if row.state != S.MIGRATING.value:
                outcome.changed.append(row.id)
            return
        if row is None or row.host_id != host_id:
            outcome.ignored.append(status.instance_id)
            return
        before = row.state
        self._observe(session, row, status)
        if row.state != before:
            outcome.changed.append(row.id)
            outcome.released += row.state == S.DELETED.value

    def _observe(self, session: Session, row: InstanceRow, status: InstanceStatus) -> None:
        current = InstanceState(row.state)
        now = self.clock()
        if status.state is ActualState.ABSENT:
            if current is S.DELETING:
                new, fault = S.DELETED, None
                quota.release(session, row.org_path, resources_of(row))
                release(session, row.host_id or "", resources_of(row))
                row.deleted_at = now
            elif current in (S.SCHEDULED, S.BUILDING, S.DELETED):
                return  # not created yet, or already gone
            else:
                new = S.ERROR
                fault = (
                    f"domain vanished from host (last seen {current.value}); it was "
                    "removed outside govcloud. Delete the instance and create it again"
                )
        else:
            new = OBSERVED[status.state]
            fault = (status.message or "the agent reported an error") if new is S.ERROR else None
        if current is S.DELETING and new is not S.DELETED:
            return  # the agent has not removed it yet
        if not can_transition(current, new):
            log.warning("ignoring %s -> %s for %s", current, new, row.id)
            return
        if new is not current:
            row.state = new.value
            row.updated_at = now
            if current in (S.SCHEDULED, S.BUILDING):
                bump_assignments(session, row.host_id)  # "create" no longer applies
        if new is S.RUNNING and row.launched_at is None:
            row.launched_at = now
        if fault is not None:
            row.fault = fault
        session.flush()
        resized = status.vcpus == row.vcpus and status.ram_mib == row.ram_mib
        self._finish_actions(session, row, status.reboot_seq, resized=resized)


def _with_migrations(
    session: Session, host_id: str, rows: Iterable[Row[*tuple[Any, ...]]]
) -> builtins.list[Assignment]:
    """The host's assignments with migration orders: those it holds (as the source) carry
    the order; instances migrating here are added (``create`` only after the handoff)."""
    outgoing, incoming = migration.orders_for(session, host_id)
    result = [_assignment(row, outgoing.get(row.id)) for row in rows]
    if incoming:
        orders = {iid: (order, create) for iid, order, create in incoming}
        arriving = session.execute(
            _ASSIGNED.where(InstanceRow.id.in_(sorted(orders))).order_by(InstanceRow.created_at)
        )
        for row in arriving:
            order, create = orders[row.id]
            result.append(_assignment(row, order, create=create))
    return result


def _assignment(
    row: Row[*tuple[Any, ...]], order: MigrationOrder | None, *, create: bool | None = None
) -> Assignment:
    """One assignment from a row of ``_ASSIGNED`` (``create`` defaults to whether the
    domain is still to be built)."""
    desired = (
        DesiredState.DELETED if row.state == S.DELETING.value else DesiredState(row.desired_power)
    )
    return Assignment(
        instance_id=row.id,
        name=row.name,
        flavor=row.flavor,
        vcpus=row.vcpus,
        ram_mib=row.ram_mib,
        disk_gib=row.disk_gib,
        desired=desired,
        reboot_seq=row.reboot_seq,
        create=row.state in (S.SCHEDULED.value, S.BUILDING.value) if create is None else create,
        image=ImageSpec(
            name=row.image_name,
            format=row.image_format,
            path=row.image_path,
            kernel_path=row.image_kernel_path,
            initrd_path=row.image_initrd_path,
            cmdline=row.image_cmdline,
        ),
        migration=order,
    )
