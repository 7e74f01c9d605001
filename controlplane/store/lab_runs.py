"""Cloud Open Lab scenario runs: provisioning a scenario's groups in a trial's project,
the loads agents apply or measure, the samples they report, and the run's progress
(provisioning -> loading -> cleaning -> completed, or cancelling -> cancelled).

VMs are created through :class:`~controlplane.store.instance.InstanceRepo` (quota and
capacity checked as for any request, each group as one decision) and deleted through its
user-action path, so a run never bypasses the scheduler, the quota or the audit trail of
instance actions. The run's own rows change under the run row's lock; instance requests
run in their own transactions after it commits (SQLite allows one writer).
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agents.protocol.v1 import InstanceLoad, LoadList, UsageSample
from controlplane.domain.errors import GovcloudError, InvalidState, NotFound
from controlplane.domain.instance import ACTION_ALLOWED, InstanceState
from controlplane.domain.lab import TrialNotFound, TrialState
from controlplane.lab.measure import GroupUsage, Progress, Sample, group_usage, next_state
from controlplane.lab.runs import GroupFailure, LabRun, SeriesPoint
from controlplane.lab.scenario import RunState, Scenario
from controlplane.store.db import Database
from controlplane.store.instance import InstanceRepo
from controlplane.store.server_group import ServerGroupRepo
from controlplane.store.tables import (
    InstanceRow,
    LabRunInstanceRow,
    LabRunRow,
    LabRunSampleRow,
    LabTrialRow,
)

log = logging.getLogger(__name__)
S = InstanceState
R = RunState
#: Trials in these states may start runs.
RUNNABLE = frozenset({TrialState.ACTIVE.value, TrialState.EXPIRING.value})
PENDING_OUTCOME, RUNNING_OUTCOME, FAILED_OUTCOME = "pending", "running", "failed"
#: How often an agent with no load asks again (seconds): a new run is noticed this fast.
IDLE_POLL_S = 2.0


class RunNotFound(NotFound):
    """A run that does not exist or that the caller may not see."""

    def __init__(self, ident: str) -> None:
        GovcloudError.__init__(
            self,
            f"scenario run {ident!r} not found; list a trial's runs with `govcloud lab runs TRIAL`",
            code="lab_run.not_found",
            kind="lab_run",
            id=ident,
        )


class LabRunRepo:
    """Scenario runs of trials."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        instances: InstanceRepo,
        server_groups: ServerGroupRepo,
    ) -> None:
        self.db = db
        self.clock = clock
        self.instances = instances
        self.server_groups = server_groups

    # -- start --------------------------------------------------------------------------

    def start(self, trial_id: str, scenario: Scenario, *, actor: str, request_id: str) -> LabRun:
        """Create the run and request its groups' VMs in the trial's project."""
        now = self.clock()
        run_id = str(uuid.uuid4())
        with self.db.transaction() as session:
            trial = session.scalar(
                select(LabTrialRow).where(LabTrialRow.id == trial_id).with_for_update()
            )
            if trial is None:
                raise TrialNotFound(trial_id)
            if trial.state not in RUNNABLE or not trial.project_path:
                raise InvalidState(
                    f"trial {trial_id} is {trial.state}; scenarios run in active or expiring "
                    "trials",
                    code="trial.not_active",
                    state=trial.state,
                    field="trial",
                    value=trial_id,
                )
            busy = session.scalar(
                select(LabRunRow.id).where(
                    LabRunRow.trial_id == trial_id,
                    LabRunRow.state.in_([s.value for s in RunState if s.active]),
                )
            )
            if busy is not None:
                raise InvalidState(
                    f"trial {trial_id} already has run {busy} in progress; wait for it or "
                    f"cancel it with `govcloud lab run-cancel {busy}`",
                    code="lab_run.busy",
                    run=busy,
                    limit=1,
                )
            project_path = trial.project_path
            session.add(
                LabRunRow(
                    id=run_id,
                    trial_id=trial_id,
                    name=scenario.name,
                    scenario=scenario.model_dump(mode="json"),
                    state=R.PROVISIONING.value,
                    message=f"provisioning {scenario.vm_count} VM(s)",
                    server_groups=[],
                    failures={},
                    summary=None,
                    created_by=actor,
                    created_at=now,
                )
            )
        groups: list[str] = []
        failures: dict[str, dict[str, object]] = {}
        created: list[tuple[str, str]] = []
        short = run_id[:8]
        for group in scenario.groups:
            try:
                sg_id = None
                if group.server_group is not None:
                    sg = self.server_groups.create(
                        name=f"run-{short}-{group.name}",
                        project=trial_id,
                        policy=group.server_group,
                        max_per_host=None,
                        actor=actor,
                    )
                    sg_id = sg.id
                    groups.append(sg.id)
                made = self.instances.create_many(
                    name=f"{scenario.name}-{group.name}"[:50],
                    project=trial_id,
                    flavor=group.flavor,
                    image=group.image,
                    datacentre=group.datacentre,
                    actor=actor,
                    request_id=request_id,
                    count=group.count,
                    all_or_nothing=False,
                    server_group=sg_id,
                )
                created.extend((i.id, group.name) for i in made)
            except GovcloudError as exc:
                log.info("run %s group %s not requested: %s", run_id, group.name, exc.message)
                failures[group.name] = {
                    "count": group.count,
                    "code": exc.code,
                    "reason": exc.message,
                }
        with self.db.transaction() as session:
            row = self._row(session, run_id, lock=True)
            row.server_groups, row.failures = groups, failures
            for instance_id, group_name in created:
                session.add(
                    LabRunInstanceRow(
                        instance_id=instance_id,
                        run_id=run_id,
                        group_name=group_name,
                        outcome=PENDING_OUTCOME,
                        requested_at=now,
                    )
                )
            if not created:
                row.state, row.finished_at = R.FAILED.value, now
                row.message = "no VM could be requested: " + "; ".join(
                    f"{g}: {f['reason']}" for g, f in failures.items()
                )
        if not created:
            self._remove_groups(run_id, project_path)
        return self.get(run_id)

    # -- reads --------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, run_id: str, *, lock: bool = False) -> LabRunRow:
        query = select(LabRunRow).where(LabRunRow.id == run_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = session.scalar(query)
        if row is None:
            raise RunNotFound(run_id)
        return row

    def trial_of(self, run_id: str) -> str:
        """The trial a run belongs to (the caller judges visibility by the trial)."""
        with self.db.transaction() as session:
            return self._row(session, run_id).trial_id

    def get(self, run_id: str) -> LabRun:
        """One run with its progress and (live or final) per-group statistics."""
        with self.db.transaction() as session:
            return self._model(session, self._row(session, run_id))

    def list(self, trial_id: str) -> builtins.list[LabRun]:
        """A trial's runs, newest first."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(LabRunRow)
                .where(LabRunRow.trial_id == trial_id)
                .order_by(LabRunRow.created_at.desc(), LabRunRow.id)
            ).all()
            return [self._model(session, r) for r in rows]

    def latest_measured(self, trial_id: str) -> LabRun | None:
        """The newest completed run of a trial (what sizing uses), if any."""
        with self.db.transaction() as session:
            row = session.scalar(
                select(LabRunRow)
                .where(LabRunRow.trial_id == trial_id, LabRunRow.state == R.COMPLETED.value)
                .order_by(LabRunRow.created_at.desc(), LabRunRow.id)
                .limit(1)
            )
            return None if row is None else self._model(session, row)

    def series(self, run_id: str, group: str | None = None) -> builtins.list[SeriesPoint]:
        """The run's samples in time order (optionally one group's)."""
        with self.db.transaction() as session:
            self._row(session, run_id)
            query = (
                select(LabRunSampleRow)
                .where(LabRunSampleRow.run_id == run_id)
                .order_by(LabRunSampleRow.at, LabRunSampleRow.id)
            )
            if group is not None:
                query = query.where(LabRunSampleRow.group_name == group)
            return [
                SeriesPoint(
                    at=s.at,
                    group=s.group_name,
                    instance_id=s.instance_id,
                    cpu=s.cpu,
                    ram=s.ram,
                    disk=s.disk,
                    source=s.source,
                )
                for s in session.scalars(query)
            ]

    def _members(
        self, session: Session, run_id: str
    ) -> builtins.list[tuple[LabRunInstanceRow, InstanceRow]]:
        return [
            (m, i)
            for m, i in session.execute(
                select(LabRunInstanceRow, InstanceRow)
                .join(InstanceRow, InstanceRow.id == LabRunInstanceRow.instance_id)
                .where(LabRunInstanceRow.run_id == run_id)
                .order_by(LabRunInstanceRow.group_name, InstanceRow.name, InstanceRow.id)
            ).all()
        ]

    def _groups(
        self,
        session: Session,
        row: LabRunRow,
        members: Sequence[tuple[LabRunInstanceRow, InstanceRow]],
    ) -> builtins.list[GroupUsage]:
        scenario = Scenario.model_validate(row.scenario)
        samples = [
            Sample(group=g, cpu=c, ram=r, disk=d)
            for g, c, r, d in session.execute(
                select(
                    LabRunSampleRow.group_name,
                    LabRunSampleRow.cpu,
                    LabRunSampleRow.ram,
                    LabRunSampleRow.disk,
                ).where(LabRunSampleRow.run_id == row.id)
            ).all()
        ]
        out = []
        for group in scenario.groups:
            mine = [(m, i) for m, i in members if m.group_name == group.name]
            sizes = next(
                ((i.flavor, i.vcpus, i.ram_mib, i.disk_gib) for _, i in mine),
                (group.flavor, 1, 1, 0),
            )
            provision = [
                (m.running_at - m.requested_at).total_seconds()
                for m, _ in mine
                if m.running_at is not None
            ]
            failed = sum(1 for m, _ in mine if m.outcome == FAILED_OUTCOME)
            failed += int(row.failures.get(group.name, {}).get("count", 0))
            out.append(group_usage(group.name, sizes, group.count, provision, failed, samples))
        return out

    def _model(self, session: Session, row: LabRunRow) -> LabRun:
        members = self._members(session, row.id)
        if row.summary is not None:
            groups = [GroupUsage.model_validate(g) for g in row.summary]
        else:
            groups = self._groups(session, row, members)
        samples = session.scalar(
            select(func.count())
            .select_from(LabRunSampleRow)
            .where(LabRunSampleRow.run_id == row.id)
        )
        not_requested = sum(int(f.get("count", 0)) for f in row.failures.values())
        return LabRun(
            id=row.id,
            trial_id=row.trial_id,
            name=row.name,
            state=RunState(row.state),
            message=row.message,
            scenario=Scenario.model_validate(row.scenario),
            created_by=row.created_by,
            created_at=row.created_at,
            load_started_at=row.load_started_at,
            load_ended_at=row.load_ended_at,
            finished_at=row.finished_at,
            vms=len(members),
            running=sum(1 for m, _ in members if m.running_at is not None),
            failed=sum(1 for m, _ in members if m.outcome == FAILED_OUTCOME) + not_requested,
            live=sum(1 for _, i in members if i.state != S.DELETED.value),
            samples=int(samples or 0),
            failures={g: GroupFailure.model_validate(f) for g, f in row.failures.items()},
            groups=groups,
        )

    # -- agents -------------------------------------------------------------------------

    def loaded_hosts(self) -> set[str]:
        """Hosts with a running VM under a loading run (one query for the whole fleet:
        heartbeat acks tell each agent whether to ask for its loads at all)."""
        with self.db.transaction() as session:
            hosts = session.scalars(
                select(InstanceRow.host_id)
                .distinct()
                .join(LabRunInstanceRow, LabRunInstanceRow.instance_id == InstanceRow.id)
                .join(LabRunRow, LabRunRow.id == LabRunInstanceRow.run_id)
                .where(
                    LabRunRow.state == R.LOADING.value,
                    InstanceRow.state == S.RUNNING.value,
                    InstanceRow.host_id.is_not(None),
                )
            )
            return {h for h in hosts if h}

    def loads(self, host_id: str) -> LoadList:
        """The running VMs on ``host_id`` whose run is loading, with their profiles."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(LabRunInstanceRow, LabRunRow)
                .join(LabRunRow, LabRunRow.id == LabRunInstanceRow.run_id)
                .join(InstanceRow, InstanceRow.id == LabRunInstanceRow.instance_id)
                .where(
                    LabRunRow.state == R.LOADING.value,
                    InstanceRow.host_id == host_id,
                    InstanceRow.state == S.RUNNING.value,
                )
                .order_by(LabRunInstanceRow.instance_id)
            ).all()
            loads: builtins.list[InstanceLoad] = []
            interval: float | None = None
            for member, run in rows:
                scenario = Scenario.model_validate(run.scenario)
                group = next(g for g in scenario.groups if g.name == member.group_name)
                every = scenario.sample_interval_s
                interval = every if interval is None else min(interval, every)
                loads.append(
                    InstanceLoad(instance_id=member.instance_id, run_id=run.id, profile=group.load)
                )
            return LoadList(host_id=host_id, sample_interval_s=interval or IDLE_POLL_S, loads=loads)

    def record(self, host_id: str, samples: Sequence[UsageSample]) -> int:
        """Store the samples of VMs that run on ``host_id`` under a loading run; others
        (a finished run, another host's VM) are ignored. Returns how many were kept."""
        if not samples:
            return 0
        now = self.clock()
        by_id = {s.instance_id: s for s in samples}
        with self.db.transaction() as session:
            rows = session.execute(
                select(LabRunInstanceRow)
                .join(LabRunRow, LabRunRow.id == LabRunInstanceRow.run_id)
                .join(InstanceRow, InstanceRow.id == LabRunInstanceRow.instance_id)
                .where(
                    LabRunInstanceRow.instance_id.in_(list(by_id)),
                    LabRunRow.state == R.LOADING.value,
                    InstanceRow.host_id == host_id,
                )
            ).scalars()
            kept = 0
            for member in rows:
                s = by_id[member.instance_id]
                session.add(
                    LabRunSampleRow(
                        run_id=member.run_id,
                        instance_id=member.instance_id,
                        group_name=member.group_name,
                        at=now,
                        cpu=s.cpu,
                        ram=s.ram,
                        disk=s.disk,
                        source=s.source,
                    )
                )
                kept += 1
            return kept

    # -- progress -----------------------------------------------------------------------

    def active(self) -> builtins.list[str]:
        """Ids of runs the loop advances, oldest first."""
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(LabRunRow.id)
                    .where(LabRunRow.state.in_([s.value for s in RunState if s.active]))
                    .order_by(LabRunRow.created_at, LabRunRow.id)
                )
            )

    def cancel(self, run_id: str, actor: str) -> LabRun:
        """Stop the run: its VMs and server groups are removed (state ``cancelling``,
        then ``cancelled`` once every VM is gone)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, run_id, lock=True)
            state = RunState(row.state)
            if not state.active:
                raise InvalidState(
                    f"run {run_id} is {state.value}; only a run in progress can be cancelled",
                    code="lab_run.finished",
                    state=state.value,
                )
            if state is not R.CANCELLING:
                row.state = R.CANCELLING.value
                row.message = f"cancelled by {actor}; removing its VMs"
                if row.load_started_at is not None and row.load_ended_at is None:
                    row.load_ended_at = now
        return self.tick(run_id)

    def tick(self, run_id: str) -> LabRun:
        """Advance one run (level-based, idempotent): record VMs that came up or failed,
        move the state on, remove VMs when cleaning or cancelling."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, run_id, lock=True)
            state = RunState(row.state)
            if not state.active:
                return self._model(session, row)
            scenario = Scenario.model_validate(row.scenario)
            members = self._members(session, run_id)
            for member, inst in members:
                if member.outcome != PENDING_OUTCOME:
                    continue
                if inst.state == S.RUNNING.value:
                    member.outcome = RUNNING_OUTCOME
                    member.running_at = max(inst.launched_at or now, member.requested_at)
                elif inst.state in (S.ERROR.value, S.DELETED.value):
                    member.outcome = FAILED_OUTCOME
                    member.fault = inst.fault or f"instance became {inst.state}"
            progress = Progress(
                total=len(members),
                running=sum(1 for m, _ in members if m.outcome == RUNNING_OUTCOME),
                failed=sum(1 for m, _ in members if m.outcome == FAILED_OUTCOME),
                gone=sum(1 for _, i in members if i.state == S.DELETED.value),
            )
            nxt = next_state(
                state,
                progress,
                now,
                created_at=row.created_at,
                load_started_at=row.load_started_at,
                duration_s=scenario.duration_s,
                provision_timeout_s=scenario.provision_timeout_s,
            )
            if nxt is R.LOADING and state is R.PROVISIONING:
                for member, _ in members:
                    if member.outcome == PENDING_OUTCOME:
                        member.outcome = FAILED_OUTCOME
                        member.fault = (
                            f"not running {scenario.provision_timeout_s:g} s after the request"
                        )
                row.load_started_at = now
                row.message = (
                    f"{progress.running} of {progress.total} VM(s) running; loading for "
                    f"{scenario.duration_s:g} s"
                )
            elif nxt is R.CANCELLING and state is R.PROVISIONING:
                row.message = "every VM failed; removing what is left"
            elif nxt is R.CLEANING:
                row.load_ended_at = now
                session.flush()
                row.summary = [
                    g.model_dump(mode="json") for g in self._groups(session, row, members)
                ]
                row.message = "load finished; removing the run's VMs"
            elif nxt in (R.COMPLETED, R.CANCELLED):
                row.finished_at = now
                failed_all = progress.total and progress.failed >= progress.total
                if nxt is R.CANCELLED and failed_all and row.load_started_at is None:
                    nxt = R.FAILED
                row.message = {
                    R.COMPLETED: "completed; measured usage recorded",
                    R.CANCELLED: "cancelled; everything the run created is removed",
                    R.FAILED: "failed: no VM came up; everything the run created is removed",
                }[nxt]
                if row.summary is None:
                    session.flush()
                    row.summary = [
                        g.model_dump(mode="json") for g in self._groups(session, row, members)
                    ]
            row.state = nxt.value
            project_path = session.scalar(
                select(LabTrialRow.project_path).where(LabTrialRow.id == row.trial_id)
            )
            to_delete = (
                [i.id for _, i in members if S(i.state) in ACTION_ALLOWED["delete"]]
                if nxt in (R.CLEANING, R.CANCELLING)
                else []
            )
            finished = nxt in (R.COMPLETED, R.CANCELLED, R.FAILED)
        for instance_id in to_delete:
            try:
                self.instances.request(
                    instance_id,
                    "delete",
                    scope=project_path or "",
                    actor="lab-run",
                    request_id=f"lab-run-{run_id[:8]}",
                )
            except GovcloudError as exc:  # changed meanwhile; the next tick looks again
                log.info("run %s: delete of %s refused: %s", run_id, instance_id, exc.message)
        if finished and project_path:
            self._remove_groups(run_id, project_path)
        return self.get(run_id)

    def _remove_groups(self, run_id: str, project_path: str) -> None:
        with self.db.transaction() as session:
            groups = list(self._row(session, run_id).server_groups)
        left = []
        for group_id in groups:
            try:
                self.server_groups.delete(group_id, project_path)
            except NotFound:
                continue
            except GovcloudError as exc:
                log.info("run %s: server group %s kept: %s", run_id, group_id, exc.message)
                left.append(group_id)
        with self.db.transaction() as session:
            self._row(session, run_id, lock=True).server_groups = left
