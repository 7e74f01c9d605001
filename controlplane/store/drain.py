"""Drains: emptying a host (``host drain``/``maintenance``) or a data centre into another
(``dc evacuate``), advanced level-based by the drain loop.

A drain row holds the parameters (concurrency limit, end state, maintenance window) and
the progress; the work itself is what the store shows each pass: the movable instances
still on the subject, and the drain's migrations in flight. So a control plane that
restarts simply carries on, and two replicas advancing the same drain at once only race
on the instance row lock (one start wins; the loser sees the instance MIGRATING).

A host drain keeps running while its host is SUSPECT or DOWN (on its way back to
DRAINING, ``hosts.return_state``): nothing can move off a silent host, so it waits and
carries on when the host reports again (a DOWN host is evacuation's business; if that
empties it, the drain finishes and the host returns in the drain's end state). A host
that an open consolidation is emptying is not drained (``host.consolidating``).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import uuid4

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from controlplane.domain.datacentre import DataCentreState
from controlplane.domain.errors import (
    Conflict,
    GovcloudError,
    InvalidRequest,
    InvalidState,
    NotFound,
)
from controlplane.domain.host import LIVENESS_STATES, HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.liveness import returns_to
from controlplane.domain.maintenance import check_window
from controlplane.domain.migration import (
    DEFAULT_MAX_PARALLEL,
    IN_FLIGHT,
    Drain,
    DrainKind,
    DrainState,
    MigrationPhase,
    batch_size,
)
from controlplane.store.consolidation_run import emptying
from controlplane.store.db import Database
from controlplane.store.maintenance import add_window
from controlplane.store.migration import MOVABLE, MigrationRepo
from controlplane.store.tables import DataCentreRow, DrainRow, HostRow, InstanceRow, MigrationRow

log = logging.getLogger(__name__)
S = InstanceState
_IN_FLIGHT = [p.value for p in IN_FLIGHT]
#: Host states a maintenance drain leaves for ACTIVE when its window ends.
_MAINTAINED = (HostState.MAINTENANCE.value, HostState.DRAINING.value)
#: Most instances one pass tries to start per drain (bounds a pass when nothing fits).
_TRIES_PER_PASS = 20


@dataclass
class DrainPass:
    """What one pass of the drain loop did."""

    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)


def _administrative(host: HostRow) -> str:
    """The host's administrative state: its state, or while it is SUSPECT or DOWN the
    state its next heartbeat returns it to (``hosts.return_state``)."""
    if HostState(host.state) in LIVENESS_STATES:
        return returns_to(HostState(host.return_state) if host.return_state else None).value
    return host.state


def _refuse_consolidating(session: Session, host: HostRow) -> None:
    """A host that an open consolidation is emptying is not drained as well (the
    consolidation would skip the drain's moves, but two owners of one host confuse)."""
    holder = emptying(session, host.id)
    if holder is None:
        return
    dc = holder.datacentre
    raise Conflict(
        f"host {host.name} is being emptied by consolidation {holder.id} of {dc} "
        f"({holder.state}); see it with `govcloud dc consolidate {dc} --show`, or cancel "
        f"it with `govcloud dc consolidate {dc} --cancel` (hosts not yet powered down "
        "return to active) and drain the host then",
        code="host.consolidating",
        host=host.name,
        consolidation=holder.id,
        datacentre=dc,
        state=holder.state,
    )


def _subject_filter(row: DrainRow) -> ColumnElement[bool]:
    if row.kind == DrainKind.HOST.value:
        return InstanceRow.host_id == row.subject
    return InstanceRow.datacentre == row.subject


class DrainRepo:
    """Start, stop, read and advance drains."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        migrations: MigrationRepo,
    ) -> None:
        self.db = db
        self.clock = clock
        self.migrations = migrations

    # -- commands -------------------------------------------------------------------------

    def drain_host(
        self,
        host: str,
        *,
        actor: str,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        end_state: HostState = HostState.DRAINING,
        until: datetime | None = None,
        reason: str = "",
        window_until: datetime | None = None,
    ) -> Drain:
        """Put ``host`` into DRAINING and start moving its instances away (a running drain
        of the same host is superseded: its parameters are replaced). ``window_until``:
        also record a maintenance window from now to then, in the same transaction (so a
        refused drain leaves none)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = session.scalar(
                select(HostRow)
                .where(or_(HostRow.id == host, HostRow.name == host))
                .with_for_update()
            )
            if row is None:
                raise NotFound("host", host)
            if HostState(row.state) in LIVENESS_STATES:
                raise InvalidState(
                    f"host {row.name} is {row.state}: its instances cannot be live-migrated "
                    "(evacuation handles DOWN hosts); wait until it reports again",
                    code="host.not_drainable",
                    host=row.name,
                    state=row.state,
                )
            _refuse_consolidating(session, row)
            window = None
            if window_until is not None:
                window = add_window(
                    session,
                    datacentre=row.datacentre,
                    host=row,
                    starts_at=now,
                    ends_at=window_until,
                    reason=reason or "host maintenance",
                    actor=actor,
                    now=now,
                ).id
            self._supersede(session, DrainKind.HOST, row.id, now)
            row.state = HostState.DRAINING.value
            drain = DrainRow(
                id=str(uuid4()),
                kind=DrainKind.HOST.value,
                subject=row.id,
                subject_name=row.name,
                target_datacentre=row.datacentre,
                max_parallel=max_parallel,
                end_state=end_state.value,
                until=until,
                reason=reason,
                maintenance_window=window,
                state=DrainState.RUNNING.value,
                total=self._count(session, InstanceRow.host_id == row.id),
                message="",
                created_by=actor,
                started_at=now,
            )
            session.add(drain)
            session.flush()
            return self._model(session, drain)

    def maintenance_host(
        self,
        host: str,
        *,
        actor: str,
        until: datetime,
        reason: str = "",
        max_parallel: int = DEFAULT_MAX_PARALLEL,
    ) -> Drain:
        """Drain, record a maintenance window from now to ``until`` (so the SLA excludes
        it), and leave the host in MAINTENANCE once empty; it returns to ACTIVE at
        ``until`` (or earlier with ``undrain``)."""
        check_window(self.clock(), until)  # the input first, as for any window
        return self.drain_host(
            host,
            actor=actor,
            max_parallel=max_parallel,
            end_state=HostState.MAINTENANCE,
            until=until,
            reason=reason,
            window_until=until,
        )

    def undrain(self, host: str, *, actor: str) -> Drain | None:
        """Back to ACTIVE; a running drain is cancelled (moves in flight still finish).
        Returns the cancelled or last drain of the host, if any."""
        now = self.clock()
        with self.db.transaction() as session:
            row = session.scalar(
                select(HostRow)
                .where(or_(HostRow.id == host, HostRow.name == host))
                .with_for_update()
            )
            if row is None:
                raise NotFound("host", host)
            if row.state not in (
                HostState.DRAINING.value,
                HostState.MAINTENANCE.value,
                HostState.ACTIVE.value,
            ):
                raise InvalidState(
                    f"host {row.name} is {row.state}, not draining or in maintenance",
                    code="host.not_draining",
                    host=row.name,
                    state=row.state,
                )
            row.state = HostState.ACTIVE.value
            self._supersede(session, DrainKind.HOST, row.id, now, f"undrained by {actor}")
            last = session.scalar(
                select(DrainRow)
                .where(DrainRow.kind == DrainKind.HOST.value, DrainRow.subject == row.id)
                .order_by(DrainRow.started_at.desc())
                .limit(1)
            )
            return self._model(session, last) if last is not None else None

    def evacuate_dc(
        self,
        code: str,
        *,
        target: str,
        actor: str,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
    ) -> Drain:
        """Set data centre ``code`` to DRAINING (no new placements) and move its instances
        to ``target`` (cold migrations). Running it again resumes (and replaces the
        parameters of) the evacuation."""
        now = self.clock()
        if code == target:
            raise InvalidRequest(
                f"the target data centre must differ from {code}", field="target", value=target
            )
        with self.db.transaction() as session:
            source = session.get(DataCentreRow, code, with_for_update=True)
            if source is None:
                raise NotFound("dc", code)
            dest = session.get(DataCentreRow, target)
            if dest is None:
                raise NotFound("dc", target)
            if dest.state != DataCentreState.ACTIVE.value:
                raise InvalidState(
                    f"target data centre {target} is {dest.state}; it must be active",
                    code="dc.not_active",
                    datacentre=target,
                    state=dest.state,
                )
            self._supersede(session, DrainKind.DATACENTRE, code, now)
            source.state = DataCentreState.DRAINING.value
            drain = DrainRow(
                id=str(uuid4()),
                kind=DrainKind.DATACENTRE.value,
                subject=code,
                subject_name=code,
                target_datacentre=target,
                max_parallel=max_parallel,
                end_state=DataCentreState.DRAINING.value,
                until=None,
                reason="",
                maintenance_window=None,
                state=DrainState.RUNNING.value,
                total=self._count(session, InstanceRow.datacentre == code),
                message="",
                created_by=actor,
                started_at=now,
            )
            session.add(drain)
            session.flush()
            return self._model(session, drain)

    # -- reads ----------------------------------------------------------------------------

    def get(self, drain_id: str) -> Drain:
        """One drain with its progress."""
        with self.db.transaction() as session:
            row = session.get(DrainRow, drain_id)
            if row is None:
                raise NotFound("drain", drain_id)
            return self._model(session, row)

    def list(self, *, subject: str | None = None, running: bool = False) -> list[Drain]:
        """Drains, newest first (``subject``: a host id or name, or a data-centre code)."""
        query = select(DrainRow)
        with self.db.transaction() as session:
            if subject:
                host = session.scalar(
                    select(HostRow.id).where(or_(HostRow.id == subject, HostRow.name == subject))
                )
                query = query.where(DrainRow.subject == (host or subject))
            if running:
                query = query.where(DrainRow.state == DrainState.RUNNING.value)
            rows = session.scalars(query.order_by(DrainRow.started_at.desc()).limit(100))
            return [self._model(session, r) for r in rows]

    # -- the loop's pass ------------------------------------------------------------------

    def advance(self) -> DrainPass:
        """Start migrations up to each running drain's limit; finish empty drains; end
        maintenance whose time is up."""
        report = DrainPass()
        with self.db.transaction() as session:
            running = builtins.list(
                session.scalars(
                    select(DrainRow.id).where(DrainRow.state == DrainState.RUNNING.value)
                )
            )
        for drain_id in running:
            self._advance_one(drain_id, report)
        self._end_maintenance(report)
        return report

    def _advance_one(self, drain_id: str, report: DrainPass) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            drain = session.get(DrainRow, drain_id)
            if drain is None or drain.state != DrainState.RUNNING.value:
                return
            left = self._left_draining(session, drain)
            if left is not None:  # an operator changed the state: the drain is over
                drain.state, drain.finished_at = DrainState.CANCELLED.value, now
                drain.message = f"cancelled: {left}"
                return
            subject = _subject_filter(drain)
            in_flight = self._in_flight(session, drain)
            waiting = builtins.list(
                session.scalars(
                    select(InstanceRow.id)
                    .where(subject, InstanceRow.state.in_(sorted(MOVABLE)))
                    .order_by(InstanceRow.created_at, InstanceRow.id)
                    .limit(_TRIES_PER_PASS)
                )
            )
            remaining = self._count(session, subject)
            target_dc = drain.target_datacentre
            limit, kind = drain.max_parallel, drain.kind
        if remaining == 0 and in_flight == 0:
            self._complete(drain_id, now, report)
            return
        room = batch_size(limit, in_flight, len(waiting))
        problems: builtins.list[str] = []
        for instance_id in waiting:
            if room <= 0:
                break
            try:
                mig = self.migrations.start(
                    instance_id,
                    actor="drain",
                    request_id=f"drain-{drain_id}",
                    target_datacentre=target_dc if kind == DrainKind.DATACENTRE.value else None,
                    drain_id=drain_id,
                )
            except GovcloudError as err:
                problems.append(f"{instance_id}: {err.message}")
                continue
            report.started.append(mig.id)
            room -= 1
        with self.db.transaction() as session:
            drain = session.get(DrainRow, drain_id)
            if drain is None:
                return
            stuck = self._silent(session, drain) or self._stuck(session, drain)
            message = "; ".join(problems[:3] + stuck)
            drain.message = message[:2000]
            if message:
                report.blocked[drain_id] = message

    def _complete(self, drain_id: str, now: datetime, report: DrainPass) -> None:
        with self.db.transaction() as session:
            drain = session.get(DrainRow, drain_id, with_for_update=True)
            if drain is None or drain.state != DrainState.RUNNING.value:
                return
            drain.state, drain.finished_at = DrainState.DONE.value, now
            drain.message = "empty"
            if drain.kind == DrainKind.HOST.value:
                host = session.get(HostRow, drain.subject, with_for_update=True)
                if host is not None and host.state == HostState.DRAINING.value:
                    host.state = drain.end_state
                    drain.message = f"empty; host is {drain.end_state}"
                elif host is not None and _administrative(host) == HostState.DRAINING.value:
                    host.return_state = drain.end_state  # emptied by evacuation meanwhile
                    drain.message = (
                        f"empty; host is {host.state} and becomes {drain.end_state} when it "
                        "reports again"
                    )
            else:
                drain.message = (
                    f"empty; data centre {drain.subject} stays draining (retire it when ready)"
                )
            report.finished.append(drain_id)

    def _end_maintenance(self, report: DrainPass) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            due = session.scalars(
                select(DrainRow).where(
                    DrainRow.kind == DrainKind.HOST.value,
                    DrainRow.end_state == HostState.MAINTENANCE.value,
                    DrainRow.state.in_([DrainState.RUNNING.value, DrainState.DONE.value]),
                    DrainRow.until.is_not(None),
                    DrainRow.until <= now,
                )
            )
            for drain in due:
                host = session.get(HostRow, drain.subject, with_for_update=True)
                if host is not None and host.state in _MAINTAINED:
                    host.state = HostState.ACTIVE.value
                elif host is not None and _administrative(host) in _MAINTAINED:
                    host.return_state = HostState.ACTIVE.value  # back to active when it reports
                drain.state = DrainState.ENDED.value
                drain.finished_at = drain.finished_at or now
                drain.message = "maintenance window ended; host active again"
                report.finished.append(drain.id)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _count(session: Session, subject: ColumnElement[bool]) -> int:
        return int(
            session.scalar(
                select(func.count()).where(subject, InstanceRow.state != S.DELETED.value)
            )
            or 0
        )

    @staticmethod
    def _left_draining(session: Session, drain: DrainRow) -> str | None:
        """Why the subject is no longer draining (None while it is)."""
        if drain.kind == DrainKind.HOST.value:
            host = session.get(HostRow, drain.subject)
            if host is None:
                return f"host {drain.subject_name} is gone"
            if _administrative(host) == HostState.DRAINING.value:
                return None
            return f"host {drain.subject_name} is {host.state}"
        dc = session.get(DataCentreRow, drain.subject)
        dc_state = dc.state if dc is not None else "gone"
        if dc_state == DataCentreState.DRAINING.value:
            return None
        return f"data centre {drain.subject} is {dc_state}"

    @staticmethod
    def _in_flight(session: Session, drain: DrainRow) -> int:
        return int(
            session.scalar(
                select(func.count()).where(
                    MigrationRow.drain_id == drain.id, MigrationRow.phase.in_(_IN_FLIGHT)
                )
            )
            or 0
        )

    @staticmethod
    def _silent(session: Session, drain: DrainRow) -> builtins.list[str]:
        """Why a host drain waits while its host is SUSPECT or DOWN (empty otherwise)."""
        host = session.get(HostRow, drain.subject) if drain.kind == DrainKind.HOST.value else None
        if host is None or HostState(host.state) not in LIVENESS_STATES:
            return []
        return [
            f"host {host.name} is {host.state}: its instances move once it reports again "
            "(a down host is evacuated if its data centre restarts elsewhere)"
        ]

    @staticmethod
    def _stuck(session: Session, drain: DrainRow) -> builtins.list[str]:
        rows = session.execute(
            select(InstanceRow.state, func.count())
            .where(
                _subject_filter(drain),
                InstanceRow.state.not_in([*sorted(MOVABLE), S.MIGRATING.value, S.DELETED.value]),
            )
            .group_by(InstanceRow.state)
        )
        return [
            f"{n} instance(s) {state} cannot move (they move once RUNNING or STOPPED; "
            "delete or repair ERROR/UNKNOWN ones)"
            for state, n in rows
        ]

    @staticmethod
    def _supersede(
        session: Session, kind: DrainKind, subject: str, now: datetime, why: str = ""
    ) -> None:
        for old in session.scalars(
            select(DrainRow).where(
                DrainRow.kind == kind.value,
                DrainRow.subject == subject,
                DrainRow.state.in_([DrainState.RUNNING.value, DrainState.DONE.value]),
            )
        ):
            # A finished drain ends too: its maintenance end must not fire later.
            running = old.state == DrainState.RUNNING.value
            old.state = (DrainState.CANCELLED if running else DrainState.ENDED).value
            old.finished_at = old.finished_at or now
            old.message = why or "superseded by a new drain"

    def _model(self, session: Session, row: DrainRow) -> Drain:
        counts = dict(
            session.execute(
                select(MigrationRow.phase, func.count())
                .where(MigrationRow.drain_id == row.id)
                .group_by(MigrationRow.phase)
            ).all()
        )
        remaining = (
            self._count(session, _subject_filter(row))
            if row.state == DrainState.RUNNING.value
            else 0
        )
        return Drain(
            id=row.id,
            kind=DrainKind(row.kind),
            subject=row.subject,
            subject_name=row.subject_name,
            target_datacentre=row.target_datacentre,
            max_parallel=row.max_parallel,
            end_state=row.end_state,
            until=row.until,
            reason=row.reason,
            maintenance_window=row.maintenance_window,
            state=DrainState(row.state),
            total=row.total,
            remaining=remaining,
            in_flight=sum(int(counts.get(p, 0)) for p in _IN_FLIGHT),
            migrated=int(counts.get(MigrationPhase.DONE.value, 0)),
            failed=int(counts.get(MigrationPhase.FAILED.value, 0)),
            message=row.message,
            created_by=row.created_by,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
