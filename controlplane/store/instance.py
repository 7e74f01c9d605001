"""Instances: creation with placement, user actions, resize, agent status, history, pending
retries."""

from __future__ import annotations

import builtins
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import uuid4

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    ImageSpec,
    InstanceStatus,
)
from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    InstanceAction,
    InstanceState,
    PowerIntent,
    action_outcome,
    can_transition,
    check_action,
)
from controlplane.domain.org import OrgKind, within
from controlplane.domain.resources import Resources
from controlplane.scheduler import Explanation, FleetView, PlacementRequest, Plan
from controlplane.store import quota
from controlplane.store.db import Database, in_subtree
from controlplane.store.host import bump_assignments, fleet_view
from controlplane.store.org import get_row as get_org_row
from controlplane.store.placement import PlacementConflict, claim, release, resize_claim
from controlplane.store.tables import (
    DataCentreRow,
    FlavorRow,
    HostRow,
    ImageRow,
    InstanceActionRow,
    InstanceResizeRow,
    InstanceRow,
)

log = logging.getLogger(__name__)
S = InstanceState
Scheduler = Callable[[FleetView, PlacementRequest], Plan | Explanation]

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


def _model(row: InstanceRow, host_name: str | None) -> Instance:
    return Instance(
        id=row.id,
        name=row.name,
        project=row.project,
        org_path=row.org_path,
        flavor=row.flavor,
        image=row.image,
        resources=_resources(row),
        datacentre=row.datacentre,
        requested_datacentre=row.requested_datacentre,
        host=row.host_id,
        host_name=host_name,
        state=InstanceState(row.state),
        desired_power=PowerIntent(row.desired_power),
        reboot_seq=row.reboot_seq,
        pending_reason=row.pending_reason,
        fault=row.fault,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        launched_at=row.launched_at,
    )


def _resources(row: InstanceRow) -> Resources:
    return Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)


class InstanceRepo:
    """Everything that changes an instance row goes through here."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        schedule: Scheduler,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.clock = clock
        self.schedule = schedule
        self.max_attempts = max_attempts

    # -- creation -----------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        project: str,
        flavor: str,
        image: str,
        datacentre: str | None,
        actor: str,
        request_id: str,
    ) -> Instance:
        """Create an instance and, in the same transaction, claim a host for it.

        If no host fits, the instance stays PENDING with the scheduler's explanation and
        the pending loop retries it when capacity appears.
        """
        # Up to max_attempts placements, each on a fresh snapshot; after that the instance
        # is stored PENDING for the pending loop (place=False cannot conflict, so this ends).
        for attempt in itertools.count():
            try:
                return self._create_once(
                    name,
                    project,
                    flavor,
                    image,
                    datacentre,
                    actor,
                    request_id,
                    place=attempt < self.max_attempts,
                )
            except PlacementConflict:
                log.info("placement race lost for %s; re-snapshotting", name)
        raise AssertionError("itertools.count() does not end")

    def _create_once(
        self,
        name: str,
        project: str,
        flavor: str,
        image: str,
        datacentre: str | None,
        actor: str,
        request_id: str,
        *,
        place: bool,
    ) -> Instance:
        now = self.clock()
        with self.db.transaction() as session:
            org = get_org_row(session, project)
            if org.kind != OrgKind.PROJECT.value:
                raise InvalidRequest(
                    f"instances belong to projects; {project!r} is a {org.kind}",
                    field="project",
                    value=project,
                )
            flavor_row = session.get(FlavorRow, flavor)
            if flavor_row is None:
                raise NotFound("flavor", flavor)
            image_row = session.get(ImageRow, image)
            if image_row is None:
                raise NotFound("image", image)
            if datacentre is not None and session.get(DataCentreRow, datacentre) is None:
                raise NotFound("dc", datacentre)
            _check_image_fits(image_row, flavor_row)
            amount = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            row = InstanceRow(
                id=str(uuid4()),
                name=name,
                project=project,
                org_path=org.path,
                flavor=flavor,
                image=image,
                vcpus=amount.vcpus,
                ram_mib=amount.ram_mib,
                disk_gib=amount.disk_gib,
                requested_datacentre=datacentre,
                datacentre=None,
                host_id=None,
                state=S.PENDING.value,
                desired_power=PowerIntent.RUNNING.value,
                reboot_seq=0,
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()  # the instance row exists before its action and quota rows
            # Decide before taking any lock, so the root quota row is held only for the
            # quota check and the claim; then quota rows (root first), then the host.
            decision = self._decide(session, row) if place else None
            quota.charge(session, org.path, amount, now, row.id)
            host_name = None
            if decision is not None:
                host_name = self._commit(session, row, decision)
            else:
                row.pending_reason = (
                    f"lost {self.max_attempts} placement races to concurrent requests; "
                    "will retry automatically"
                )
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="create",
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                )
            )
            return _model(row, host_name)

    def _decide(self, session: Session, row: InstanceRow) -> Plan | Explanation:
        """Snapshot the fleet and ask the scheduler (reads only: no locks are taken)."""
        view = fleet_view(session, row.requested_datacentre)
        return self.schedule(
            view, PlacementRequest(resources=_resources(row), datacentre=row.requested_datacentre)
        )

    def _commit(
        self, session: Session, row: InstanceRow, decision: Plan | Explanation
    ) -> str | None:
        """Claim the chosen host for ``row`` (PENDING), or record why none fits; returns the
        host's name. Raises PlacementConflict when the host no longer has room."""
        if isinstance(decision, Explanation):
            row.pending_reason = decision.summary()
            return None
        claim(session, decision.host_id, _resources(row))
        host = session.get(HostRow, decision.host_id)
        assert host is not None
        row.state, row.host_id, row.datacentre = S.SCHEDULED.value, host.id, host.datacentre
        row.scheduled_at = self.clock()
        row.pending_reason = None
        return host.name

    def place_pending(self, limit: int = 100) -> int:
        """Retry PENDING instances, oldest first; returns how many were placed."""
        with self.db.transaction() as session:
            ids = list(
                session.scalars(
                    select(InstanceRow.id)
                    .where(InstanceRow.state == S.PENDING.value)
                    .order_by(InstanceRow.created_at, InstanceRow.id)
                    .limit(limit)
                )
            )
        placed = 0
        for instance_id in ids:
            try:
                with self.db.transaction() as session:
                    # Take the row only if it is still PENDING: two control-plane replicas
                    # retrying the same instance cannot both place it.
                    taken = session.execute(
                        update(InstanceRow)
                        .where(InstanceRow.id == instance_id, InstanceRow.state == S.PENDING.value)
                        .values(updated_at=self.clock())
                        .execution_options(synchronize_session=False)
                    )
                    if taken.rowcount != 1:  # type: ignore[attr-defined]
                        continue
                    row = session.get(InstanceRow, instance_id, populate_existing=True)
                    assert row is not None
                    if self._commit(session, row, self._decide(session, row)) is not None:
                        placed += 1
            except PlacementConflict:
                log.info("placement race lost for pending %s; next pass retries", instance_id)
        return placed

    # -- reads --------------------------------------------------------------------------

    def get(self, instance_id: str, scope: str) -> Instance:
        """One instance the caller (scoped to ``scope``) may see, else NotFound."""
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope)
            return _model(row, _host_name(session, row.host_id))

    def list(
        self,
        scope: str,
        *,
        state: str | None = None,
        datacentre: str | None = None,
        host: str | None = None,
        org: str | None = None,
        name: str | None = None,
        limit: int = 100,
        marker: str | None = None,
    ) -> list[Instance]:
        """Instances in ``scope``'s subtree (or ``org``'s, inside it), oldest first.

        DELETED instances are listed only when ``state="DELETED"`` is asked for.
        """
        query = (
            select(InstanceRow, HostRow.name)
            .outerjoin(HostRow, HostRow.id == InstanceRow.host_id)
            .where(in_subtree(InstanceRow.org_path, scope))
        )
        if state:
            query = query.where(InstanceRow.state == state)
        else:
            query = query.where(InstanceRow.state != S.DELETED.value)
        if datacentre:
            query = query.where(InstanceRow.datacentre == datacentre)
        if host:
            query = query.where((HostRow.name == host) | (HostRow.id == host))
        if name:
            query = query.where(InstanceRow.name == name)
        with self.db.transaction() as session:
            if org:
                org_path = get_org_row(session, org).path
                if not within(org_path, scope):
                    raise NotFound("org", org)
                query = query.where(in_subtree(InstanceRow.org_path, org_path))
            if marker:
                after = self._visible_row(session, marker, scope)
                query = query.where(
                    (InstanceRow.created_at > after.created_at)
                    | ((InstanceRow.created_at == after.created_at) & (InstanceRow.id > after.id))
                )
            rows = session.execute(
                query.order_by(InstanceRow.created_at, InstanceRow.id).limit(limit)
            )
            return [_model(r, h) for r, h in rows]

    def actions(self, instance_id: str, scope: str) -> builtins.list[InstanceAction]:
        """The instance's action history, oldest first."""
        with self.db.transaction() as session:
            self._visible_row(session, instance_id, scope)
            rows = session.scalars(
                select(InstanceActionRow)
                .where(InstanceActionRow.instance_id == instance_id)
                .order_by(InstanceActionRow.id)
            )
            return [InstanceAction.model_validate(r, from_attributes=True) for r in rows]

    # -- user actions -------------------------------------------------------------------

    def request(
        self, instance_id: str, action: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Record the user's intent (start/stop/reboot/delete) for the agent to carry out."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            state = InstanceState(row.state)
            check_action(action, state, instance_id)
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action=action,
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                )
            )
            if action == "start":
                row.desired_power = PowerIntent.RUNNING.value
            elif action == "stop":
                row.desired_power = PowerIntent.STOPPED.value
            elif action == "reboot":
                row.reboot_seq += 1
            elif state is S.PENDING:  # delete before placement: nothing to undo on a host
                row.state, row.deleted_at = S.DELETED.value, now
                quota.release(session, row.org_path, _resources(row))
            else:
                row.state = S.DELETING.value
            row.updated_at = now
            session.flush()
            # Only what the request itself completes (deleting a PENDING instance): a reboot
            # is done when the agent reports it applied, never at request time.
            self._finish_actions(session, row, reboot_applied=0)
            bump_assignments(session, row.host_id)
            return _model(row, _host_name(session, row.host_id))

    def resize(
        self, instance_id: str, flavor: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Give a STOPPED instance the sizes of ``flavor``, on the host it already has.

        One transaction, locks in the global order: the instance row, then the quota rows
        root first (only growing dimensions are checked: QuotaExceeded), then the host (a
        conditional UPDATE by the difference: InsufficientCapacity). Then the instance
        takes the new flavor and sizes, the resize is recorded for metering, an action row
        is added (finished when the agent reports the domain redefined) and the host's
        agent is woken. Everything or nothing.
        """
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            flavor_row = session.get(FlavorRow, flavor)
            if flavor_row is None:
                raise NotFound("flavor", flavor)
            if flavor == row.flavor:
                raise InvalidRequest(
                    f"instance {row.name} ({row.id}) already has flavor {flavor}; "
                    "choose another flavor",
                    field="flavor",
                    value=flavor,
                )
            check_action("resize", InstanceState(row.state), instance_id)
            image_row = session.get(ImageRow, row.image)
            if image_row is not None:  # in use, so it cannot have been deleted
                _check_image_fits(image_row, flavor_row)
            old = _resources(row)
            new = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            assert row.host_id is not None  # a STOPPED instance holds a claim
            quota.adjust(session, row.org_path, old, new, now, row.id)
            resize_claim(session, row.host_id, old, new)
            session.add(
                InstanceResizeRow(
                    instance_id=row.id,
                    at=now,
                    old_flavor=row.flavor,
                    old_vcpus=old.vcpus,
                    old_ram_mib=old.ram_mib,
                    old_disk_gib=old.disk_gib,
                    new_flavor=flavor,
                    new_vcpus=new.vcpus,
                    new_ram_mib=new.ram_mib,
                    new_disk_gib=new.disk_gib,
                )
            )
            superseded = session.scalars(
                select(InstanceActionRow).where(
                    InstanceActionRow.instance_id == row.id,
                    InstanceActionRow.action == "resize",
                    InstanceActionRow.result == "pending",
                )
            )
            for earlier in superseded:
                earlier.result, earlier.finished_at = "cancelled", now
                earlier.message = f"superseded by a resize to {flavor} (request {request_id})"
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="resize",
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                    message=f"{row.flavor} -> {flavor}",
                )
            )
            row.flavor = flavor
            row.vcpus, row.ram_mib, row.disk_gib = new.vcpus, new.ram_mib, new.disk_gib
            row.updated_at = now
            bump_assignments(session, row.host_id)
            return _model(row, _host_name(session, row.host_id))

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
                assignments=[_assignment(inst, img) for inst, img in rows],
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
                quota.release(session, row.org_path, _resources(row))
                release(session, row.host_id or "", _resources(row))
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

    def _finish_actions(
        self, session: Session, row: InstanceRow, reboot_applied: int, *, resized: bool = False
    ) -> None:
        state = InstanceState(row.state)
        pending = session.scalars(
            select(InstanceActionRow).where(
                InstanceActionRow.instance_id == row.id, InstanceActionRow.result == "pending"
            )
        )
        for action in pending:
            outcome = action_outcome(
                action.action, state, reboot_applied, row.reboot_seq, resized=resized
            )
            if outcome is not None:
                action.result, action.finished_at = outcome, self.clock()
                if outcome == "error":
                    action.message = row.fault or ""

    @staticmethod
    def _visible_row(
        session: Session, instance_id: str, scope: str, lock: bool = False
    ) -> InstanceRow:
        row = session.get(InstanceRow, instance_id, with_for_update=lock)
        # Another tenant's instance is reported as missing, not forbidden: no existence leak.
        if row is None or not within(row.org_path, scope):
            raise NotFound("instance", instance_id)
        return row


def _check_image_fits(image: ImageRow, flavor: FlavorRow) -> None:
    if flavor.ram_mib < image.min_ram_mib:
        raise InvalidRequest(
            f"flavor {flavor.name} has {flavor.ram_mib} MiB RAM; image {image.name} needs at "
            f"least {image.min_ram_mib} MiB. Choose a larger flavor",
            field="flavor",
            limit=image.min_ram_mib,
            value=flavor.ram_mib,
        )
    if flavor.disk_gib < image.min_disk_gib:
        raise InvalidRequest(
            f"flavor {flavor.name} has {flavor.disk_gib} GiB disk; image {image.name} needs "
            f"at least {image.min_disk_gib} GiB. Choose a larger flavor",
            field="flavor",
            limit=image.min_disk_gib,
            value=flavor.disk_gib,
        )


def _host_name(session: Session, host_id: str | None) -> str | None:
    return (
        None
        if host_id is None
        else session.scalar(select(HostRow.name).where(HostRow.id == host_id))
    )


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
