"""The agent side of instances: what a host must run (assignments, with
migration orders) and the statuses its agent reports."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    ImageSpec,
    InstanceStatus,
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


@dataclass
class StatusOutcome:
    """What a status report did: instances whose state changed, claims released, and
    reports ignored because the instance is not on the reporting host."""

    changed: list[str] = field(default_factory=list)
    released: int = 0
    ignored: list[str] = field(default_factory=list)


class InstanceAgentSide(InstanceBase):
    """``assignments``, ``assignment_generation`` and ``apply_status``."""

    # -- agent side ---------------------------------------------------------------------

    def assignments(self, host_id: str) -> AssignmentList:
        """What the agent of ``host_id`` must run, at the host's assignment generation."""
        with self.db.transaction() as session:
            host = session.get(HostRow, host_id)
            if host is None:
                raise NotFound("host", host_id)
            rows = session.execute(
                select(InstanceRow, ImageRow)
                .join(ImageRow, ImageRow.name == InstanceRow.image)
                .where(InstanceRow.host_id == host_id, InstanceRow.state != S.DELETED.value)
                .order_by(InstanceRow.created_at)
            )
            return AssignmentList(
                host_id=host_id,
                generation=host.assign_generation,
                assignments=_with_migrations(session, host_id, rows),
            )

    def assignment_generation(self, host_id: str) -> int:
        """The long-poll key of ``host_id``."""
        with self.db.transaction() as session:
            generation = session.scalar(
                select(HostRow.assign_generation).where(HostRow.id == host_id)
            )
            if generation is None:
                raise NotFound("host", host_id)
            return generation

    def apply_status(self, host_id: str, statuses: builtins.list[InstanceStatus]) -> StatusOutcome:
        """Move instances to what the agent observed (only instances on ``host_id``)."""
        outcome = StatusOutcome()
        for status in statuses:
            with self.db.transaction() as session:
                row = session.get(InstanceRow, status.instance_id, with_for_update=True)
                if (
                    row is not None
                    and row.state == S.MIGRATING.value
                    and migration.observe(session, self.clock(), row, host_id, status)
                ):
                    if row.state != S.MIGRATING.value:
                        outcome.changed.append(row.id)
                    continue
                if row is None or row.host_id != host_id:
                    outcome.ignored.append(status.instance_id)
                    continue
                before = row.state
                self._observe(session, row, status)
                if row.state != before:
                    outcome.changed.append(row.id)
                    outcome.released += row.state == S.DELETED.value
        return outcome

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
    session: Session, host_id: str, rows: Iterable[Any]
) -> builtins.list[Assignment]:
    """The host's assignments with migration orders: those it holds (as the source) carry
    the order; instances migrating here are added (``create`` only after the handoff)."""
    outgoing, incoming = migration.orders_for(session, host_id)
    result = [
        _assignment(inst, img).model_copy(update={"migration": outgoing.get(inst.id)})
        for inst, img in rows
    ]
    if incoming:
        orders = {iid: (order, create) for iid, order, create in incoming}
        for inst, img in session.execute(
            select(InstanceRow, ImageRow)
            .join(ImageRow, ImageRow.name == InstanceRow.image)
            .where(InstanceRow.id.in_(sorted(orders)))
            .order_by(InstanceRow.created_at)
        ):
            order, create = orders[inst.id]
            result.append(
                _assignment(inst, img).model_copy(update={"migration": order, "create": create})
            )
    return result


def _assignment(inst: InstanceRow, image: ImageRow) -> Assignment:
    desired = (
        DesiredState.DELETED if inst.state == S.DELETING.value else DesiredState(inst.desired_power)
    )
    return Assignment(
        instance_id=inst.id,
        name=inst.name,
        flavor=inst.flavor,
        vcpus=inst.vcpus,
        ram_mib=inst.ram_mib,
        disk_gib=inst.disk_gib,
        desired=desired,
        reboot_seq=inst.reboot_seq,
        create=inst.state in (S.SCHEDULED.value, S.BUILDING.value),
        image=ImageSpec(
            name=image.name,
            format=image.format,
            path=image.path,
            kernel_path=image.kernel_path,
            initrd_path=image.initrd_path,
            cmdline=image.cmdline,
        ),
    )
