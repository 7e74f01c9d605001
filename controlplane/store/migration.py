"""Migrations: start (target claim), agent observations, finish, roll back, sweep.

The state machine is in ``domain/migration.py``. Lock order is the global one: instance
row, server group row, host rows. A migration's target claim is taken with the same
conditional UPDATE as any placement (``placement.claim``), so a drain can never
overcommit a host whatever runs concurrently; the source claim is released, and the
instance's ``host_id`` switched to the target, in the one transaction that finishes the
move, after the target reported the domain.

``InstanceRepo.assignments`` and ``InstanceRepo.apply_status`` call :func:`orders_for`
and :func:`observe` so that agents see and report migrations in their usual pass.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from agents.protocol.v1 import (
    ActualState,
    InstanceStatus,
    MigrationOrder,
    MigrationProgress,
    MigrationRole,
)
from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.errors import InvalidRequest, InvalidState, NotFound
from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState, PowerIntent
from controlplane.domain.migration import (
    IN_FLIGHT,
    Migration,
    MigrationKind,
    MigrationPhase,
    kind_for,
)
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler import FleetView, PlacementRequest, Plan
from controlplane.scheduler.groups import violation
from controlplane.store.db import Database
from controlplane.store.fleet_index import fleet_view
from controlplane.store.host import bump_assignments
from controlplane.store.placement import PlacementConflict, claim, release
from controlplane.store.server_group import group_view, members_by_host
from controlplane.store.server_group import lock as lock_group
from controlplane.store.tables import (
    DataCentreRow,
    HostRow,
    InstanceActionRow,
    InstanceRow,
    MigrationRow,
    ServerGroupRow,
)

log = logging.getLogger(__name__)
S = InstanceState
P = MigrationPhase
Scheduler = Callable[[FleetView, PlacementRequest], Plan]
_IN_FLIGHT = [p.value for p in IN_FLIGHT]
#: States an instance may be moved from.
MOVABLE: frozenset[str] = frozenset({S.RUNNING.value, S.STOPPED.value})


class MigrationImpossible(InvalidState):
    """No host can take the instance now (the message names the hosts and reasons)."""

    code = "migration.no_valid_host"


def _model(row: MigrationRow, names: dict[str, str], instance_name: str = "") -> Migration:
    return Migration(
        id=row.id,
        instance_id=row.instance_id,
        instance_name=instance_name,
        kind=MigrationKind(row.kind),
        phase=MigrationPhase(row.phase),
        source_host=names.get(row.source_host_id, row.source_host_id),
        target_host=names.get(row.target_host_id, row.target_host_id),
        source_datacentre=row.source_datacentre,
        target_datacentre=row.target_datacentre,
        drain_id=row.drain_id,
        message=row.message,
        requested_by=row.requested_by,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


def _amount(row: InstanceRow) -> Resources:
    return Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)


def in_flight(session: Session, instance_id: str) -> MigrationRow | None:
    """The instance's migration in flight, if any."""
    return session.scalar(
        select(MigrationRow).where(
            MigrationRow.instance_id == instance_id, MigrationRow.phase.in_(_IN_FLIGHT)
        )
    )


def _host_names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(HostRow.id, HostRow.name).where(HostRow.id.in_(sorted(ids)))).all()
    )


def _find_host(session: Session, ident: str) -> HostRow:
    host = session.scalar(select(HostRow).where(or_(HostRow.id == ident, HostRow.name == ident)))
    if host is None:
        raise NotFound("host", ident)
    return host


def _incoming_members(session: Session, group_id: str) -> dict[str, int]:
    """Target host id -> group members migrating there (not yet counted by host_id)."""
    rows = session.execute(
        select(MigrationRow.target_host_id, func.count())
        .join(InstanceRow, InstanceRow.id == MigrationRow.instance_id)
        .where(InstanceRow.server_group_id == group_id, MigrationRow.phase.in_(_IN_FLIGHT))
        .group_by(MigrationRow.target_host_id)
    )
    return {str(host): int(n) for host, n in rows}


def _group_members(session: Session, group_id: str, moving: InstanceRow) -> dict[str, int]:
    """Members per host as a move sees them: the moving instance left its source, members
    in flight already count on their targets."""
    members = dict(members_by_host(session, group_id))
    if moving.host_id is not None and members.get(moving.host_id, 0) > 0:
        members[moving.host_id] -= 1
    for host, n in _incoming_members(session, group_id).items():
        members[host] = members.get(host, 0) + n
    return members


class MigrationRepo:
    """Start migrations and read them; the agent side is :func:`observe`."""

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

    # -- start ----------------------------------------------------------------------------

    def start(
        self,
        instance_id: str,
        *,
        actor: str,
        request_id: str,
        target: str | None = None,
        target_datacentre: str | None = None,
        drain_id: str | None = None,
    ) -> Migration:
        """Claim room on a target host and put the instance into MIGRATING.

        ``target`` names the host (id or name), else the scheduler picks one in
        ``target_datacentre`` (default: the instance's own data centre), never the source,
        respecting capacity, traits and server groups. A claim lost to a concurrent
        placement is retried up to ``max_attempts`` times with a fresh snapshot.
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._start_once(
                    instance_id, actor, request_id, target, target_datacentre, drain_id
                )
            except PlacementConflict:
                if attempt == self.max_attempts:
                    raise
                log.info("migration claim race lost for %s (attempt %d)", instance_id, attempt)
        raise AssertionError("unreachable")

    def _start_once(
        self,
        instance_id: str,
        actor: str,
        request_id: str,
        target: str | None,
        target_datacentre: str | None,
        drain_id: str | None,
    ) -> Migration:
        now = self.clock()
        with self.db.transaction() as session:
            row = session.get(InstanceRow, instance_id, with_for_update=True)
            if row is None or row.state == S.DELETED.value:
                raise NotFound("instance", instance_id)
            if row.state not in MOVABLE or row.host_id is None:
                raise InvalidState(
                    f"cannot migrate instance {row.name} ({row.id}) in state {row.state}; "
                    "migrate is accepted in: RUNNING, STOPPED",
                    code="instance.invalid_state",
                    action="migrate",
                    state=row.state,
                    allowed=sorted(MOVABLE),
                )
            source = session.get(HostRow, row.host_id)
            assert source is not None
            dc = target_datacentre or source.datacentre
            group = (
                session.get(ServerGroupRow, row.server_group_id) if row.server_group_id else None
            )
            amount = _amount(row)
            if target is not None:
                host = _find_host(session, target)
                self._check_target(row, source, host, dc)
                target_id, target_name = host.id, host.name
            else:
                target_id, target_name = self._choose(session, row, source, dc, group, amount)
            if group is not None:
                locked = lock_group(session, group.id)
                policy = GroupPolicy(locked.policy)
                if policy.hard:
                    cap = (
                        (locked.max_per_host or 1) if policy is GroupPolicy.ANTI_AFFINITY else None
                    )
                    problem = violation(
                        policy, cap, _group_members(session, locked.id, row), [target_id]
                    )
                    if problem is not None:
                        raise MigrationImpossible(
                            f"cannot move {row.name} to {target_name}: server group "
                            f"{locked.name} forbids it ({problem})",
                            group=locked.name,
                            host=target_name,
                        )
            try:
                claim(session, target_id, amount)
            except PlacementConflict:
                if target is None:
                    raise
                self._explain_full(session, target_id, amount)
            kind = kind_for(source.datacentre, dc)
            mig = MigrationRow(
                id=str(uuid4()),
                instance_id=row.id,
                kind=kind.value,
                phase=P.PREPARING.value,
                source_host_id=source.id,
                target_host_id=target_id,
                source_datacentre=source.datacentre,
                target_datacentre=dc,
                drain_id=drain_id,
                message="",
                requested_by=actor,
                started_at=now,
                updated_at=now,
            )
            session.add(mig)
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="migrate",
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                    message=f"{kind.value} migration {source.name} -> {target_name}",
                )
            )
            row.state, row.updated_at = S.MIGRATING.value, now
            bump_assignments(session, source.id)
            bump_assignments(session, target_id)
            session.flush()
            return _model(mig, {source.id: source.name, target_id: target_name}, row.name)

    @staticmethod
    def _check_target(row: InstanceRow, source: HostRow, host: HostRow, dc: str) -> None:
        if host.id == source.id:
            raise InvalidRequest(
                f"instance {row.name} already runs on host {host.name}; choose another host",
                field="target",
                value=host.name,
            )
        if host.datacentre != dc:
            raise InvalidRequest(
                f"host {host.name} is in data centre {host.datacentre}, not {dc}; live "
                "migration stays inside a data centre (use `dc evacuate` to move across)",
                field="target",
                value=host.name,
            )
        if host.state != HostState.ACTIVE.value:
            raise InvalidState(
                f"host {host.name} is {host.state} and takes no new instances; choose an "
                "active host",
                code="host.not_schedulable",
                host=host.name,
                state=host.state,
            )

    @staticmethod
    def _explain_full(session: Session, host_id: str, amount: Resources) -> None:
        host = session.get(HostRow, host_id, populate_existing=True)
        assert host is not None
        short = [
            f"{d}: needs {getattr(amount, d)}, "
            f"{getattr(host, f'usable_{d}') - getattr(host, f'used_{d}')} free"
            for d in ("vcpus", "ram_mib", "disk_gib")
            if getattr(host, f"used_{d}") + getattr(amount, d) > getattr(host, f"usable_{d}")
        ]
        raise InvalidState(
            f"host {host.name} cannot take the instance: {'; '.join(short) or host.state}",
            code="host.insufficient_capacity",
            host=host.name,
            short=short,
        )

    def _choose(
        self,
        session: Session,
        row: InstanceRow,
        source: HostRow,
        dc: str,
        group: ServerGroupRow | None,
        amount: Resources,
    ) -> tuple[str, str]:
        view = tuple(h for h in fleet_view(session, dc) if h.id != source.id)
        scheduling: dict[str, Any] = row.scheduling or {}
        policy_name = scheduling.get("policy") or session.scalar(
            select(DataCentreRow.placement_policy).where(DataCentreRow.code == dc)
        )
        gview = None
        if group is not None:
            base = group_view(session, group)
            gview = type(base)(
                id=base.id,
                name=base.name,
                policy=base.policy,
                max_per_host=base.max_per_host,
                members=_group_members(session, group.id, row),
            )
        request = PlacementRequest(
            resources=amount,
            datacentre=dc,
            required_traits=frozenset(scheduling.get("required_traits", ())),
            forbidden_traits=frozenset(scheduling.get("forbidden_traits", ())),
            policy=PlacementPolicy(policy_name) if policy_name else PlacementPolicy.SPREAD,
            group=gview,
        )
        plan = self.schedule(view, request)
        if not plan.placements:
            raise MigrationImpossible(
                f"no host can take {row.name} ({row.id}) in data centre {dc} (the source "
                f"{source.name} is excluded): {plan.explanation.message}",
                datacentre=dc,
                rejected=dict(plan.explanation.rejected),
            )
        chosen = plan.placements[0]
        return chosen.host_id, chosen.host_name

    # -- reads ----------------------------------------------------------------------------

    def list(
        self,
        *,
        instance: str | None = None,
        host: str | None = None,
        drain: str | None = None,
        active: bool = False,
        limit: int = 200,
    ) -> list[Migration]:
        """Migrations, newest first."""
        query = select(MigrationRow, InstanceRow.name).join(
            InstanceRow, InstanceRow.id == MigrationRow.instance_id
        )
        with self.db.transaction() as session:
            if instance:
                query = query.where(MigrationRow.instance_id == instance)
            if host:
                hid = _find_host(session, host).id
                query = query.where(
                    or_(MigrationRow.source_host_id == hid, MigrationRow.target_host_id == hid)
                )
            if drain:
                query = query.where(MigrationRow.drain_id == drain)
            if active:
                query = query.where(MigrationRow.phase.in_(_IN_FLIGHT))
            rows = list(
                session.execute(
                    query.order_by(MigrationRow.started_at.desc(), MigrationRow.id).limit(limit)
                )
            )
            ids = {r.source_host_id for r, _ in rows} | {r.target_host_id for r, _ in rows}
            names = _host_names(session, ids)
            return [_model(r, names, name) for r, name in rows]

    def get(self, migration_id: str) -> Migration:
        """One migration."""
        with self.db.transaction() as session:
            row = session.get(MigrationRow, migration_id)
            if row is None:
                raise NotFound("migration", migration_id)
            inst = session.get(InstanceRow, row.instance_id)
            names = _host_names(session, {row.source_host_id, row.target_host_id})
            return _model(row, names, inst.name if inst else "")

    # -- sweep ----------------------------------------------------------------------------

    def sweep(self, timeout: timedelta) -> builtins.list[str]:
        """Roll back migrations whose instance left MIGRATING behind their back, whose
        source (instance UNKNOWN) or target host is DOWN, or that are in flight longer
        than ``timeout``; returns their ids."""
        now = self.clock()
        failed: builtins.list[str] = []
        with self.db.transaction() as session:
            candidates = builtins.list(
                session.execute(
                    select(MigrationRow.id, MigrationRow.instance_id).where(
                        MigrationRow.phase.in_(_IN_FLIGHT)
                    )
                )
            )
        for mig_id, instance_id in candidates:
            with self.db.transaction() as session:
                row = session.get(InstanceRow, instance_id, with_for_update=True)
                mig = session.get(MigrationRow, mig_id, populate_existing=True)
                if row is None or mig is None or mig.phase not in _IN_FLIGHT:
                    continue
                source = session.get(HostRow, mig.source_host_id)
                target = session.get(HostRow, mig.target_host_id)
                if row.state != S.MIGRATING.value:
                    _abandon(session, row, mig, now, f"instance left MIGRATING ({row.state})")
                    failed.append(mig_id)
                elif source is not None and source.state == HostState.DOWN.value:
                    # Nobody knows what runs there now: UNKNOWN, as for any DOWN host
                    # (evacuation takes it from there).
                    row.state, row.updated_at = S.UNKNOWN.value, now
                    _abandon(session, row, mig, now, f"source host {source.name} is down")
                    failed.append(mig_id)
                elif target is not None and target.state == HostState.DOWN.value:
                    rollback(session, row, mig, now, f"target host {target.name} is down")
                    failed.append(mig_id)
                elif mig.started_at < now - timeout:
                    rollback(
                        session,
                        row,
                        mig,
                        now,
                        f"timed out after {timeout.total_seconds():.0f} s in phase {mig.phase}",
                    )
                    failed.append(mig_id)
        return failed


# -- agent side (called by InstanceRepo) -------------------------------------------------

#: A host's migrations in flight, either side (built once: every assignment list runs it).
_HOST_MIGRATIONS = select(
    MigrationRow.id,
    MigrationRow.kind,
    MigrationRow.phase,
    MigrationRow.instance_id,
    MigrationRow.source_host_id,
    MigrationRow.target_host_id,
).where(
    MigrationRow.phase.in_(_IN_FLIGHT),
    or_(
        MigrationRow.source_host_id == bindparam("host_id"),
        MigrationRow.target_host_id == bindparam("host_id"),
    ),
)


def orders_for(
    session: Session, host_id: str
) -> tuple[dict[str, MigrationOrder], list[tuple[str, MigrationOrder, bool]]]:
    """Migration orders for the agent of ``host_id``: (instance id -> order for instances
    it holds as the source, [(instance id, order, create) for instances arriving]).
    Reads through the session's connection: flush the session's changes first."""
    rows = session.connection().execute(_HOST_MIGRATIONS, {"host_id": host_id}).all()
    if not rows:
        return {}, []
    uris = dict(
        session.execute(
            select(HostRow.id, HostRow.libvirt_uri).where(
                HostRow.id.in_(
                    sorted({r.source_host_id for r in rows} | {r.target_host_id for r in rows})
                )
            )
        ).all()
    )
    outgoing: dict[str, MigrationOrder] = {}
    incoming: builtins.list[tuple[str, MigrationOrder, bool]] = []
    for mig in rows:
        live = mig.kind == MigrationKind.LIVE.value
        if mig.source_host_id == host_id:
            outgoing[mig.instance_id] = MigrationOrder(
                id=mig.id,
                role=MigrationRole.SOURCE,
                live=live,
                peer_uri=uris.get(mig.target_host_id, ""),
            )
        else:
            order = MigrationOrder(
                id=mig.id,
                role=MigrationRole.TARGET,
                live=live,
                peer_uri=uris.get(mig.source_host_id, ""),
            )
            incoming.append((mig.instance_id, order, mig.phase == P.HANDOFF.value))
    return outgoing, incoming


def observe(
    session: Session, now: datetime, row: InstanceRow, host_id: str, status: InstanceStatus
) -> bool:
    """Apply an agent's report about a MIGRATING instance; False if it is not about a
    migration (the caller handles it as usual)."""
    mig = in_flight(session, row.id)
    if mig is None:
        return False
    if host_id == mig.source_host_id:
        _from_source(session, row, mig, now, status)
        return True
    if host_id == mig.target_host_id:
        _from_target(session, row, mig, now, status)
        return True
    return False


def _from_source(
    session: Session, row: InstanceRow, mig: MigrationRow, now: datetime, status: InstanceStatus
) -> None:
    if status.migration is MigrationProgress.FAILED or status.state is ActualState.ERROR:
        rollback(session, row, mig, now, f"source host: {status.message or 'migration failed'}")
        return
    if mig.phase != P.PREPARING.value:
        return
    if status.migration is MigrationProgress.READY:
        mig.message = "source paused" if mig.kind == MigrationKind.LIVE.value else "source off"
    elif status.migration is MigrationProgress.DONE:
        mig.message = "live-migrated by libvirt; waiting for the target to report it"
    else:
        return
    mig.phase, mig.updated_at = P.HANDOFF.value, now
    bump_assignments(session, mig.target_host_id)
    bump_assignments(session, mig.source_host_id)


def _from_target(
    session: Session, row: InstanceRow, mig: MigrationRow, now: datetime, status: InstanceStatus
) -> None:
    if mig.phase != P.HANDOFF.value:
        return  # nothing may run there before the handoff
    if status.state is ActualState.ERROR:
        rollback(session, row, mig, now, f"target host: {status.message or 'error'}")
        return
    wanted = (
        ActualState.RUNNING
        if row.desired_power == PowerIntent.RUNNING.value
        else ActualState.STOPPED
    )
    if status.state is wanted:
        finish(session, row, mig, now, InstanceState(wanted.value.upper()))


def finish(
    session: Session, row: InstanceRow, mig: MigrationRow, now: datetime, state: InstanceState
) -> None:
    """The target runs it: switch the instance there and release the source claim (one
    transaction); the source agent then removes its copy."""
    release(session, mig.source_host_id, _amount(row))
    row.host_id, row.datacentre = mig.target_host_id, mig.target_datacentre
    row.state, row.updated_at = state.value, now
    mig.phase, mig.finished_at, mig.updated_at = P.DONE.value, now, now
    mig.message = f"done ({mig.message})" if mig.message else "done"
    _close_action(session, row.id, now, "success", "")
    bump_assignments(session, mig.source_host_id)
    bump_assignments(session, mig.target_host_id)


def rollback(
    session: Session, row: InstanceRow, mig: MigrationRow, now: datetime, reason: str
) -> None:
    """Give up: release the target claim; the instance stays on the source (its agent
    resumes or restarts the copy it kept) and the action history says why."""
    row.state = (
        S.RUNNING.value if row.desired_power == PowerIntent.RUNNING.value else S.STOPPED.value
    )
    row.updated_at = now
    _abandon(session, row, mig, now, reason)


def _abandon(
    session: Session, row: InstanceRow, mig: MigrationRow, now: datetime, reason: str
) -> None:
    release(session, mig.target_host_id, _amount(row))
    mig.phase, mig.finished_at, mig.updated_at = P.FAILED.value, now, now
    mig.message = reason[:1000]
    _close_action(session, row.id, now, "error", f"migration rolled back: {reason}")
    log.warning("migration %s of %s rolled back: %s", mig.id, row.id, reason)
    bump_assignments(session, mig.source_host_id)
    bump_assignments(session, mig.target_host_id)


def _close_action(session: Session, instance_id: str, now: datetime, result: str, msg: str) -> None:
    for action in session.scalars(
        select(InstanceActionRow).where(
            InstanceActionRow.instance_id == instance_id,
            InstanceActionRow.action == "migrate",
            InstanceActionRow.result == "pending",
        )
    ):
        action.result, action.finished_at = result, now
        if msg:
            action.message = f"{action.message}: {msg}" if action.message else msg
