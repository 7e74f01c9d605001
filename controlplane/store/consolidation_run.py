"""Executing stored consolidation plans: the consolidation loop's pass
(``ConsolidationRunner.advance``), and the step/host helpers ``store/consolidation.py``
(and ``store/drain.py``: which consolidation empties a host) share.

Each pass, per open consolidation: steps whose migration ended become done/failed; a
running consolidation then starts pending steps in plan order, up to ``max_parallel`` in
flight. Each step is **re-validated** first against the live rows (instance still
RUNNING/STOPPED on its source, source still emptied by this consolidation, target ACTIVE
with room under ``max_fill`` of usable) and skipped with the reason if not; the migration
itself claims the target with the usual conditional UPDATE and re-checks hard group rules
(``store/migration.py``), so nothing is ever overcommitted. A skipped step skips the rest
of its source host (it cannot be emptied any more). A host whose steps have all ended is
powered down (MAINTENANCE, "powered down for consolidation ID") if it is empty, else
returned to ACTIVE with the reason. Everything is in the store, so a restarted control
plane carries on; a migration started by another replica, or just before a crash, is
adopted by its step.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from controlplane.domain.consolidation import (
    FINAL_STEP_STATES,
    OPEN_STATES,
    ConsolidationState,
    HostAction,
    HostOutcome,
    StepState,
    emptying_note,
    powered_down_note,
)
from controlplane.domain.errors import GovcloudError
from controlplane.domain.host import LIVENESS_STATES, HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.migration import IN_FLIGHT, MigrationPhase
from controlplane.store.db import Database
from controlplane.store.migration import MOVABLE, MigrationRepo
from controlplane.store.tables import (
    ConsolidationHostRow,
    ConsolidationRow,
    ConsolidationStepRow,
    HostRow,
    InstanceRow,
    MigrationRow,
)

log = logging.getLogger(__name__)
C = ConsolidationState
_OPEN = [s.value for s in OPEN_STATES]
_FINAL = {s.value for s in FINAL_STEP_STATES}
_IN_FLIGHT = [p.value for p in IN_FLIGHT]
#: Who the consolidation's migrations are requested by.
ACTOR = "consolidation"


@dataclass
class ConsolidationPass:
    """What one pass did."""

    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    powered_down: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


def steps_of(session: Session, cid: str) -> Sequence[ConsolidationStepRow]:
    """A consolidation's steps in plan order."""
    return session.scalars(
        select(ConsolidationStepRow)
        .where(ConsolidationStepRow.consolidation_id == cid)
        .order_by(ConsolidationStepRow.seq)
    ).all()


def hosts_of(session: Session, cid: str) -> Sequence[ConsolidationHostRow]:
    """The hosts a consolidation empties, by name."""
    return session.scalars(
        select(ConsolidationHostRow)
        .where(ConsolidationHostRow.consolidation_id == cid)
        .order_by(ConsolidationHostRow.host_name)
    ).all()


def emptying(session: Session, host_id: str) -> ConsolidationRow | None:
    """The open (running or paused) consolidation that is emptying ``host_id``, if any."""
    return session.scalar(
        select(ConsolidationRow)
        .join(ConsolidationHostRow, ConsolidationHostRow.consolidation_id == ConsolidationRow.id)
        .where(
            ConsolidationHostRow.host_id == host_id,
            ConsolidationHostRow.outcome == HostOutcome.EMPTYING.value,
            ConsolidationRow.state.in_(_OPEN),
        )
        .limit(1)
    )


def release_host(session: Session, cid: str, ch: ConsolidationHostRow, why: str) -> None:
    """Give a host back (ACTIVE) if this consolidation still holds it."""
    host = session.get(HostRow, ch.host_id, with_for_update=True)
    if host is not None and host.state_note == emptying_note(cid):
        if host.state == HostState.DRAINING.value:
            host.state = HostState.ACTIVE.value
            host.generation += 1
        host.state_note = None
    ch.outcome, ch.message = HostOutcome.KEPT.value, why[:2000]


class ConsolidationRunner:
    """Advances every open consolidation by one pass."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime], migrations: MigrationRepo
    ) -> None:
        self.db = db
        self.clock = clock
        self.migrations = migrations

    def advance(self) -> ConsolidationPass:
        """Refresh steps, start pending ones up to each limit, power down emptied hosts,
        finish consolidations with nothing left."""
        report = ConsolidationPass()
        with self.db.transaction() as session:
            ids = builtins.list(
                session.scalars(
                    select(ConsolidationRow.id)
                    .where(ConsolidationRow.state.in_(_OPEN))
                    .order_by(ConsolidationRow.started_at)
                )
            )
        for cid in ids:
            self._advance_one(cid, report)
        return report

    def _advance_one(self, cid: str, report: ConsolidationPass) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            row = session.get(ConsolidationRow, cid)
            if row is None or row.state not in _OPEN:
                return
            steps = steps_of(session, cid)
            for step in steps:
                if step.state == StepState.IN_FLIGHT.value:
                    self._refresh(session, step, now)
            running = row.state == C.RUNNING.value
            in_flight = sum(1 for s in steps if s.state == StepState.IN_FLIGHT.value)
            room = row.max_parallel - in_flight
            pending = [s.id for s in steps if s.state == StepState.PENDING.value]
            max_fill = row.max_fill
        if running:
            for step_id in pending:
                if room <= 0:
                    break
                if self._start_step(cid, step_id, max_fill, report):
                    room -= 1
        self._finish_hosts(cid, report)
        self._finish(cid, report)

    def _start_step(
        self, cid: str, step_id: int, max_fill: float, report: ConsolidationPass
    ) -> bool:
        """Re-validate and start one step; True if a migration is now in flight for it."""
        now = self.clock()
        with self.db.transaction() as session:
            step = session.get(ConsolidationStepRow, step_id)
            if step is None or step.state != StepState.PENDING.value:
                return False
            verdict = self._revalidate(session, cid, step, max_fill, now)
            if verdict is not None:
                if verdict:
                    self._skip_source(session, step, verdict, now)
                    report.skipped.append(step.instance_name)
                return step.state == StepState.IN_FLIGHT.value
            instance_id, target = step.instance_id, step.target_host_id
        try:
            mig = self.migrations.start(
                instance_id, actor=ACTOR, request_id=f"consolidation-{cid}", target=target
            )
        except GovcloudError as err:
            with self.db.transaction() as session:
                step = session.get(ConsolidationStepRow, step_id)
                assert step is not None
                if self._adopt(session, step, now):  # another replica started it
                    return True
                self._skip_source(session, step, err.message, now)
                report.skipped.append(step.instance_name)
            return False
        with self.db.transaction() as session:
            step = session.get(ConsolidationStepRow, step_id)
            assert step is not None
            step.state, step.migration_id, step.updated_at = (
                StepState.IN_FLIGHT.value,
                mig.id,
                now,
            )
            step.message = f"migrating {mig.source_host} -> {mig.target_host}"
        report.started.append(mig.id)
        return True

    def _revalidate(
        self,
        session: Session,
        cid: str,
        step: ConsolidationStepRow,
        max_fill: float,
        now: datetime,
    ) -> str | None:
        """None: start it. "": handled here (adopted, done, or waiting). Else why to skip."""
        inst = session.get(InstanceRow, step.instance_id)
        if inst is None or inst.state == InstanceState.DELETED.value:
            return f"instance {step.instance_name} was deleted"
        if self._adopt(session, step, now):
            return ""
        if inst.state == InstanceState.MIGRATING.value:
            return f"instance {step.instance_name} is being moved by something else"
        if inst.host_id == step.target_host_id and inst.state in MOVABLE:
            step.state, step.message, step.updated_at = (
                StepState.DONE.value,
                "already on the target",
                now,
            )
            return ""
        if inst.host_id != step.source_host_id:
            return f"instance {step.instance_name} is no longer on {step.source_name}"
        if inst.state not in MOVABLE:
            return f"instance {step.instance_name} is {inst.state} (only RUNNING/STOPPED move)"
        source = session.get(HostRow, step.source_host_id)
        target = session.get(HostRow, step.target_host_id)
        for host in (source, target):
            if host is not None and host.state == HostState.SUSPECT.value:
                step.message = f"waiting: host {host.name} is suspect"
                return ""
        if (
            source is None
            or source.state != HostState.DRAINING.value
            or source.state_note != emptying_note(cid)
        ):
            state = source.state if source else "gone"
            return f"host {step.source_name} is no longer emptied by this consolidation ({state})"
        if target is None or target.state != HostState.ACTIVE.value:
            state = target.state if target else "gone"
            return f"target {step.target_name} is {state}, not active"
        size = (step.vcpus, step.ram_mib, step.disk_gib)
        for d, (unit, have, usable) in enumerate(
            (
                ("vCPU", target.used_vcpus, target.usable_vcpus),
                ("MiB RAM", target.used_ram_mib, target.usable_ram_mib),
                ("GiB disk", target.used_disk_gib, target.usable_disk_gib),
            )
        ):
            limit = min(usable, int(usable * max_fill + 1e-9))
            if have + size[d] > limit:
                return (
                    f"target {step.target_name} has no room any more: {unit} {have} + "
                    f"{size[d]} > {limit} (the fleet changed since the plan)"
                )
        return None

    @staticmethod
    def _adopt(session: Session, step: ConsolidationStepRow, now: datetime) -> bool:
        """Take over a migration of the step's instance to its target already in flight
        (started by another replica, or just before a crash)."""
        mig = session.scalar(
            select(MigrationRow).where(
                MigrationRow.instance_id == step.instance_id,
                MigrationRow.target_host_id == step.target_host_id,
                MigrationRow.phase.in_(_IN_FLIGHT),
            )
        )
        if mig is None:
            return False
        step.state, step.migration_id, step.updated_at = StepState.IN_FLIGHT.value, mig.id, now
        return True

    @staticmethod
    def _refresh(session: Session, step: ConsolidationStepRow, now: datetime) -> None:
        mig = session.get(MigrationRow, step.migration_id) if step.migration_id else None
        if mig is None:
            step.state, step.message = StepState.FAILED.value, "its migration is gone"
        elif mig.phase == MigrationPhase.DONE.value:
            step.state, step.message = StepState.DONE.value, "done"
        elif mig.phase == MigrationPhase.FAILED.value:
            step.state, step.message = StepState.FAILED.value, f"migration failed: {mig.message}"
        else:
            return
        step.updated_at = now

    def _skip_source(
        self, session: Session, step: ConsolidationStepRow, reason: str, now: datetime
    ) -> None:
        """Skip ``step``, and the pending steps of its source host: it cannot be emptied."""
        step.state, step.message, step.updated_at = StepState.SKIPPED.value, reason[:2000], now
        log.info("consolidation step %s skipped: %s", step.seq, reason)
        session.execute(
            update(ConsolidationStepRow)
            .where(
                ConsolidationStepRow.consolidation_id == step.consolidation_id,
                ConsolidationStepRow.source_host_id == step.source_host_id,
                ConsolidationStepRow.state == StepState.PENDING.value,
                ConsolidationStepRow.id != step.id,
            )
            .values(
                state=StepState.SKIPPED.value,
                message=f"{step.source_name} cannot be emptied: step {step.seq} was skipped",
                updated_at=now,
            )
        )

    def _finish_hosts(self, cid: str, report: ConsolidationPass) -> None:
        with self.db.transaction() as session:
            steps = steps_of(session, cid)
            for ch in hosts_of(session, cid):
                if ch.outcome != HostOutcome.EMPTYING.value:
                    continue
                mine = [s for s in steps if s.source_host_id == ch.host_id]
                if any(s.state not in _FINAL for s in mine):
                    continue
                host = session.get(HostRow, ch.host_id, with_for_update=True)
                live = int(
                    session.scalar(
                        select(func.count()).where(
                            InstanceRow.host_id == ch.host_id,
                            InstanceRow.state != InstanceState.DELETED.value,
                        )
                    )
                    or 0
                )
                ours = host is not None and host.state_note == emptying_note(cid)
                if ours and host is not None and HostState(host.state) in LIVENESS_STATES:
                    continue  # wait until it reports again
                if host is None or not ours or host.state != HostState.DRAINING.value:
                    state = host.state if host else "gone"
                    release_host(
                        session, cid, ch, f"left alone: it is {state} (changed by someone else)"
                    )
                elif live or host.used_vcpus or host.used_ram_mib or host.used_disk_gib:
                    why = next((s.message for s in mine if s.state != StepState.DONE.value), "")
                    release_host(
                        session, cid, ch, f"still holds {live} instance(s): {why}".rstrip(": ")
                    )
                elif ch.action == HostAction.SPARE.value:
                    host.state, host.state_note = HostState.ACTIVE.value, None
                    ch.outcome, ch.message = HostOutcome.SPARE.value, "empty; kept on as a spare"
                else:
                    host.state = HostState.MAINTENANCE.value
                    host.state_note = powered_down_note(cid)
                    host.generation += 1
                    ch.outcome, ch.message = HostOutcome.POWERED_DOWN.value, "empty; powered down"
                    report.powered_down.append(ch.host_name)

    def _finish(self, cid: str, report: ConsolidationPass) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            row = session.get(ConsolidationRow, cid, with_for_update=True)
            if row is None or row.state not in _OPEN:
                return
            steps = steps_of(session, cid)
            hosts = hosts_of(session, cid)
            if any(s.state not in _FINAL for s in steps) or any(
                h.outcome == HostOutcome.EMPTYING.value for h in hosts
            ):
                return
            down = sum(1 for h in hosts if h.outcome == HostOutcome.POWERED_DOWN.value)
            planned = sum(1 for h in hosts if h.action == HostAction.POWER_OFF.value)
            skipped = sum(1 for s in steps if s.state == StepState.SKIPPED.value)
            failed = sum(1 for s in steps if s.state == StepState.FAILED.value)
            row.state, row.finished_at = C.DONE.value, now
            row.message = (
                f"{down} of {planned} host(s) powered down; {skipped} step(s) skipped, "
                f"{failed} failed"
            )
            report.finished.append(cid)
