"""Consolidation for energy: plan (dry run), start, pause, resume, cancel and read
(``domain/consolidation.py``); the loop's pass that executes a stored plan is
``store/consolidation_run.py``.

**Plan.** One transaction reads the data centre's hosts and live instances (with their
server groups and trait requirements) and hands them to the pure planner
(``planner/powerdown.py``).

**Start** stores the plan (``consolidations``, one ``consolidation_steps`` row per move,
one ``consolidation_hosts`` row per host it empties) and puts every host it empties into
DRAINING with a note naming the consolidation, so nothing new lands there. One open
(running or paused) consolidation per data centre; refused while a drain or evacuation
runs in the data centre.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from controlplane.domain.consolidation import (
    OPEN_STATES,
    Consolidation,
    ConsolidationHost,
    ConsolidationParams,
    ConsolidationPlan,
    ConsolidationState,
    HostAction,
    HostOutcome,
    PlanHost,
    PlanInstance,
    PowerModel,
    Step,
    StepState,
    emptying_note,
)
from controlplane.domain.datacentre import DataCentreState
from controlplane.domain.errors import InvalidState, NotFound
from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.migration import DrainKind, DrainState
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.planner.powerdown import plan as make_plan
from controlplane.store.consolidation_run import (
    ConsolidationPass,
    ConsolidationRunner,
    hosts_of,
    release_host,
    steps_of,
)
from controlplane.store.db import Database
from controlplane.store.migration import MigrationRepo
from controlplane.store.tables import (
    ConsolidationHostRow,
    ConsolidationRow,
    ConsolidationStepRow,
    DataCentreRow,
    DrainRow,
    HostRow,
    InstanceRow,
    ServerGroupRow,
)

C = ConsolidationState
_OPEN = [s.value for s in OPEN_STATES]


class ConsolidationRunning(InvalidState):
    """The data centre already has an open consolidation."""

    code = "consolidation.running"


def _res(row: HostRow, prefix: str) -> Resources:
    return Resources(
        vcpus=getattr(row, f"{prefix}_vcpus"),
        ram_mib=getattr(row, f"{prefix}_ram_mib"),
        disk_gib=getattr(row, f"{prefix}_disk_gib"),
    )


def snapshot(session: Session, dc: str) -> tuple[list[PlanHost], list[PlanInstance]]:
    """The planner's input for data centre ``dc``, read in ``session``."""
    hosts = builtins.list(
        session.scalars(select(HostRow).where(HostRow.datacentre == dc).order_by(HostRow.name))
    )
    plan_hosts = [
        PlanHost(
            id=h.id,
            name=h.name,
            state=h.state,
            usable=_res(h, "usable"),
            used=_res(h, "used"),
            traits=frozenset(h.traits or ()),
            power=(
                PowerModel(idle_watts=h.idle_watts, peak_watts=h.peak_watts)
                if h.idle_watts is not None and h.peak_watts is not None
                else None
            ),
        )
        for h in hosts
    ]
    ids = [h.id for h in hosts]
    rows = builtins.list(
        session.scalars(
            select(InstanceRow).where(
                InstanceRow.host_id.in_(ids), InstanceRow.state != InstanceState.DELETED.value
            )
        )
    )
    group_ids = sorted({r.server_group_id for r in rows if r.server_group_id})
    groups = {
        g.id: g
        for g in session.scalars(select(ServerGroupRow).where(ServerGroupRow.id.in_(group_ids)))
    }
    counts: dict[str, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(InstanceRow.server_group_id, func.count())
            .where(
                InstanceRow.server_group_id.in_(group_ids),
                InstanceRow.state != InstanceState.DELETED.value,
            )
            .group_by(InstanceRow.server_group_id)
        ).all()
    )
    instances = []
    for r in rows:
        group = groups.get(r.server_group_id or "")
        scheduling: dict[str, Any] = r.scheduling or {}
        instances.append(
            PlanInstance(
                id=r.id,
                name=r.name,
                host_id=r.host_id or "",
                state=r.state,
                size=Resources(vcpus=r.vcpus, ram_mib=r.ram_mib, disk_gib=r.disk_gib),
                group_id=group.id if group else None,
                group_name=group.name if group else "",
                group_policy=GroupPolicy(group.policy) if group else None,
                max_per_host=group.max_per_host if group else None,
                group_members=counts.get(group.id, 1) if group else 1,
                required_traits=frozenset(scheduling.get("required_traits") or ()),
                forbidden_traits=frozenset(scheduling.get("forbidden_traits") or ()),
            )
        )
    return plan_hosts, instances


class ConsolidationRepo:
    """Plan, start, steer and advance consolidations."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime], migrations: MigrationRepo
    ) -> None:
        self.db = db
        self.clock = clock
        self.migrations = migrations
        self.runner = ConsolidationRunner(db, clock, migrations)

    # -- commands -------------------------------------------------------------------------

    def plan(self, dc: str, params: ConsolidationParams) -> ConsolidationPlan:
        """The plan for ``dc`` now (dry run: nothing is written)."""
        with self.db.transaction() as session:
            self._datacentre(session, dc)
            return make_plan(dc, *snapshot(session, dc), params)

    def start(self, dc: str, params: ConsolidationParams, *, actor: str) -> Consolidation:
        """Plan ``dc`` afresh, store the plan and start executing it."""
        now = self.clock()
        with self.db.transaction() as session:
            self._datacentre(session, dc, lock=True)
            self._refuse_conflicts(session, dc)
            plan = make_plan(dc, *snapshot(session, dc), params)
            if not plan.freed:
                reasons = "; ".join(f"{h}: {why}" for h, why in list(plan.not_freed.items())[:5])
                raise InvalidState(
                    f"no host of {dc} can be freed now ({reasons}); see "
                    f"`govcloud dc consolidate {dc} --dry-run`",
                    code="consolidation.nothing_to_free",
                    datacentre=dc,
                    not_freed=plan.not_freed,
                )
            row = ConsolidationRow(
                id=str(uuid4()),
                datacentre=dc,
                state=C.RUNNING.value,
                reserve=params.reserve,
                max_fill=params.max_fill,
                max_parallel=params.max_parallel,
                plan=plan.model_dump(mode="json"),
                message="",
                created_by=actor,
                started_at=now,
            )
            session.add(row)
            for move in plan.moves:
                session.add(
                    ConsolidationStepRow(
                        consolidation_id=row.id,
                        seq=move.seq,
                        instance_id=move.instance_id,
                        instance_name=move.instance_name,
                        source_host_id=move.source_id,
                        source_name=move.source,
                        target_host_id=move.target_id,
                        target_name=move.target,
                        vcpus=move.size.vcpus,
                        ram_mib=move.size.ram_mib,
                        disk_gib=move.size.disk_gib,
                        state=StepState.PENDING.value,
                        message="",
                        updated_at=now,
                    )
                )
            sources = {m.source_id for m in plan.moves}
            for hp in plan.hosts:
                if hp.action is HostAction.POWER_OFF or (
                    hp.action is HostAction.SPARE and hp.id in sources
                ):
                    self._take_host(session, row.id, hp.id, hp.name, hp.action)
            session.flush()
            return self._model(session, row)

    def pause(self, dc: str, *, actor: str) -> Consolidation:
        """Start no new steps (moves in flight finish); ``resume`` carries on."""
        return self._steer(dc, actor, {C.RUNNING: C.PAUSED, C.PAUSED: C.PAUSED})

    def resume(self, dc: str, *, actor: str) -> Consolidation:
        """Carry on with the same stored plan."""
        return self._steer(dc, actor, {C.PAUSED: C.RUNNING, C.RUNNING: C.RUNNING})

    def cancel(self, dc: str, *, actor: str) -> Consolidation:
        """Stop for good: pending steps are skipped, hosts not yet powered down return to
        ACTIVE (moves in flight finish)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._open(session, dc)
            row.state, row.finished_at = C.CANCELLED.value, now
            row.message = f"cancelled by {actor}"
            for step in steps_of(session, row.id):
                if step.state == StepState.PENDING.value:
                    step.state, step.message, step.updated_at = (
                        StepState.SKIPPED.value,
                        "consolidation cancelled",
                        now,
                    )
            for ch in hosts_of(session, row.id):
                if ch.outcome == HostOutcome.EMPTYING.value:
                    release_host(session, row.id, ch, "consolidation cancelled")
            return self._model(session, row)

    def _steer(
        self, dc: str, actor: str, moves: dict[ConsolidationState, ConsolidationState]
    ) -> Consolidation:
        with self.db.transaction() as session:
            row = self._open(session, dc)
            new = moves[ConsolidationState(row.state)]
            if new.value != row.state:
                row.state = new.value
                row.message = f"{new.value} by {actor}"
            return self._model(session, row)

    # -- reads ----------------------------------------------------------------------------

    def get(self, consolidation_id: str) -> Consolidation:
        """One consolidation with its progress."""
        with self.db.transaction() as session:
            row = session.get(ConsolidationRow, consolidation_id)
            if row is None:
                raise NotFound("consolidation", consolidation_id)
            return self._model(session, row)

    def current(self, dc: str) -> Consolidation:
        """The data centre's open consolidation, else its latest one."""
        with self.db.transaction() as session:
            self._datacentre(session, dc)
            row = session.scalar(
                select(ConsolidationRow)
                .where(ConsolidationRow.datacentre == dc)
                .order_by(
                    ConsolidationRow.state.in_(_OPEN).desc(), ConsolidationRow.started_at.desc()
                )
                .limit(1)
            )
            if row is None:
                missing = NotFound("consolidation", dc)
                missing.message = (
                    f"data centre {dc} has no consolidation yet; plan one with "
                    f"`govcloud dc consolidate {dc} --dry-run`"
                )
                raise missing
            return self._model(session, row)

    def list(self, dc: str | None = None) -> builtins.list[Consolidation]:
        """Consolidations, newest first."""
        query = select(ConsolidationRow).order_by(ConsolidationRow.started_at.desc()).limit(100)
        if dc:
            query = query.where(ConsolidationRow.datacentre == dc)
        with self.db.transaction() as session:
            return [self._model(session, r) for r in session.scalars(query)]

    # -- the loop's pass ------------------------------------------------------------------

    def advance(self) -> ConsolidationPass:
        """One pass of the consolidation loop (``store/consolidation_run.py``)."""
        return self.runner.advance()

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _datacentre(session: Session, dc: str, *, lock: bool = False) -> DataCentreRow:
        row = session.get(DataCentreRow, dc, with_for_update=lock)
        if row is None:
            raise NotFound("dc", dc)
        if row.state != DataCentreState.ACTIVE.value:
            raise InvalidState(
                f"data centre {dc} is {row.state}; only an active data centre is consolidated",
                code="dc.not_active",
                datacentre=dc,
                state=row.state,
            )
        return row

    @staticmethod
    def _refuse_conflicts(session: Session, dc: str) -> None:
        open_row = session.scalar(
            select(ConsolidationRow).where(
                ConsolidationRow.datacentre == dc, ConsolidationRow.state.in_(_OPEN)
            )
        )
        if open_row is not None:
            raise ConsolidationRunning(
                f"data centre {dc} already has a {open_row.state} consolidation "
                f"({open_row.id}); follow it with `govcloud dc consolidate {dc} --show`, "
                f"or end it with `--resume` / `--cancel`",
                datacentre=dc,
                consolidation=open_row.id,
                state=open_row.state,
            )
        hosts = select(HostRow.id).where(HostRow.datacentre == dc)
        drain = session.scalar(
            select(DrainRow).where(
                DrainRow.state == DrainState.RUNNING.value,
                or_(
                    (DrainRow.kind == DrainKind.HOST.value) & DrainRow.subject.in_(hosts),
                    (DrainRow.kind == DrainKind.DATACENTRE.value) & (DrainRow.subject == dc),
                ),
            )
        )
        if drain is not None:
            what = "host" if drain.kind == DrainKind.HOST.value else "data centre"
            raise InvalidState(
                f"{what} {drain.subject_name} is being drained (drain {drain.id}); a "
                "consolidation would race it for the same hosts: wait until `govcloud host "
                f"drains {drain.subject_name}` shows it done, or undrain it",
                code="consolidation.drain_conflict",
                datacentre=dc,
                drain=drain.id,
                subject=drain.subject_name,
            )

    @staticmethod
    def _take_host(session: Session, cid: str, host_id: str, name: str, action: HostAction) -> None:
        """Stop placements on a host the plan empties (it must still be ACTIVE)."""
        taken = session.execute(
            update(HostRow)
            .where(HostRow.id == host_id, HostRow.state == HostState.ACTIVE.value)
            .values(
                state=HostState.DRAINING.value,
                state_note=emptying_note(cid),
                generation=HostRow.generation + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidState(
                f"host {name} changed state while planning; plan again",
                code="consolidation.conflict",
                host=name,
            )
        session.add(
            ConsolidationHostRow(
                consolidation_id=cid,
                host_id=host_id,
                host_name=name,
                action=action.value,
                outcome=HostOutcome.EMPTYING.value,
                message="",
            )
        )

    def _open(self, session: Session, dc: str) -> ConsolidationRow:
        self._datacentre(session, dc)
        row = session.scalar(
            select(ConsolidationRow)
            .where(ConsolidationRow.datacentre == dc, ConsolidationRow.state.in_(_OPEN))
            .with_for_update()
        )
        if row is None:
            raise InvalidState(
                f"data centre {dc} has no running or paused consolidation; start one with "
                f"`govcloud dc consolidate {dc}`",
                code="consolidation.not_open",
                datacentre=dc,
            )
        return row

    def _model(self, session: Session, row: ConsolidationRow) -> Consolidation:
        steps = [
            Step(
                seq=s.seq,
                instance_id=s.instance_id,
                instance_name=s.instance_name,
                source=s.source_name,
                target=s.target_name,
                state=StepState(s.state),
                migration_id=s.migration_id,
                message=s.message,
            )
            for s in steps_of(session, row.id)
        ]
        hosts = [
            ConsolidationHost(
                name=h.host_name,
                id=h.host_id,
                action=HostAction(h.action),
                outcome=HostOutcome(h.outcome),
                message=h.message,
            )
            for h in hosts_of(session, row.id)
        ]

        def count(state: StepState) -> int:
            return sum(1 for s in steps if s.state is state)

        return Consolidation(
            id=row.id,
            datacentre=row.datacentre,
            state=ConsolidationState(row.state),
            params=ConsolidationParams(
                reserve=row.reserve, max_fill=row.max_fill, max_parallel=row.max_parallel
            ),
            plan=ConsolidationPlan.model_validate(row.plan),
            steps=steps,
            hosts=hosts,
            total=len(steps),
            done=count(StepState.DONE),
            in_flight=count(StepState.IN_FLIGHT),
            pending=count(StepState.PENDING),
            skipped=count(StepState.SKIPPED),
            failed=count(StepState.FAILED),
            powered_down=sum(1 for h in hosts if h.outcome is HostOutcome.POWERED_DOWN),
            message=row.message,
            created_by=row.created_by,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
