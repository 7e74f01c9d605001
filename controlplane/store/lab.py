"""Cloud Open Lab persistence: vendors, trials, their history, evidence, sign-offs,
extensions, and the catalogue of certified offerings.

Every change to a trial locks its row first (``SELECT ... FOR UPDATE``; SQLite serialises
writers), then checks the rule on the locked row, then writes the change and a history
event in the same transaction. Approval creates the trial's project
(``gov/openlab/<vendor>/<trial id>``) with the template's quota, and checks the ministry's
``trial_envs`` limit against the trials it already holds (counted under the locks of the
ministry's quota rows, root first, so concurrent approvals cannot overshoot). The trial
environments a ministry holds are derived from the trials, not stored as quota usage, so
``quota verify`` (which recomputes usage from instances) stays exact.

Authorisation rules are pure (``controlplane.lab.access``); methods that must judge the
locked row take an ``authorize`` callback, run inside the transaction.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, InvalidRequest, NotFound
from controlplane.domain.instance import InstanceState
from controlplane.domain.lab import (
    LAB_ORG,
    LAB_ORG_NAME,
    CatalogEntry,
    Evidence,
    EvidenceKind,
    Extension,
    ExtensionState,
    Signoff,
    Stage,
    Trial,
    TrialDetail,
    TrialEvent,
    TrialInstance,
    TrialNotFound,
    TrialState,
    TrialUsage,
    Vendor,
    VendorNotFound,
)
from controlplane.domain.org import OrgKind
from controlplane.domain.quota import QuotaExceeded
from controlplane.lab import lifecycle, stages
from controlplane.lab.access import TrialRef
from controlplane.lab.duration import show_hours
from controlplane.lab.lifecycle import LabPolicy
from controlplane.store.db import Database, in_subtree
from controlplane.store.org import ROOT_CODE
from controlplane.store.quota import ensure_node
from controlplane.store.tables import (
    InstanceRow,
    LabEvidenceRow,
    LabExtensionRow,
    LabSignoffRow,
    LabTrialEventRow,
    LabTrialRow,
    LabVendorRow,
    OrganisationRow,
    QuotaNodeRow,
    UserRow,
)
from controlplane.store.usage import UsageRepo
from quotas import DIMENSIONS, Limits, Usage, check

T = TrialState
Authorize = Callable[[Trial], None]

#: The trial environments one trial holds while it has a project.
_ONE_ENV = Usage.of(trial_envs=1)


def _trial(row: LabTrialRow, pending: int | None = None) -> Trial:
    return Trial(
        id=row.id,
        name=row.name,
        vendor=row.vendor,
        ministry=row.ministry,
        offering=row.offering,
        description=row.description,
        template=row.template,
        ttl_hours=row.ttl_hours,
        state=TrialState(row.state),
        stage=Stage(row.stage),
        project=row.id if row.project_path else None,
        project_path=row.project_path,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        activated_at=row.activated_at,
        ends_at=row.ends_at,
        expired_at=row.expired_at,
        cleaned_at=row.cleaned_at,
        pending_extension=pending,
        final_usage=TrialUsage.model_validate(row.final_usage) if row.final_usage else None,
    )


def ref_of(trial: LabTrialRow) -> TrialRef:
    """The two nodes a trial row belongs to."""
    return TrialRef(vendor_path=trial.vendor_path, ministry_path=trial.ministry_path)


def _clock(row: LabTrialRow) -> lifecycle.Clock:
    return lifecycle.Clock(
        state=TrialState(row.state),
        ttl_hours=row.ttl_hours,
        activated_at=row.activated_at,
        ends_at=row.ends_at,
        warned=frozenset(row.warned or []),
    )


def _event(
    session: Session,
    row: LabTrialRow,
    now: datetime,
    kind: str,
    actor: str,
    message: str,
    **details: object,
) -> None:
    session.flush()  # the trial row first: no relationship() orders the inserts
    session.add(
        LabTrialEventRow(
            trial_id=row.id, at=now, kind=kind, actor=actor, message=message, details=details
        )
    )


def _pending_extension(session: Session, trial_id: str) -> LabExtensionRow | None:
    return session.scalar(
        select(LabExtensionRow).where(
            LabExtensionRow.trial_id == trial_id,
            LabExtensionRow.state == ExtensionState.PENDING.value,
        )
    )


class LabRepo:
    """Vendors, trials and the catalogue."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._usage = UsageRepo(db)

    # -- vendors ------------------------------------------------------------------------

    def _ensure_lab_org(self, session: Session) -> OrganisationRow:
        row = session.get(OrganisationRow, LAB_ORG)
        if row is None:
            row = OrganisationRow(
                code=LAB_ORG,
                name=LAB_ORG_NAME,
                kind=OrgKind.MINISTRY.value,
                parent=ROOT_CODE,
                path=f"{ROOT_CODE}/{LAB_ORG}",
            )
            session.add(row)
            session.flush()
            ensure_node(session, LAB_ORG)
        elif row.kind != OrgKind.MINISTRY.value or row.parent != ROOT_CODE:
            raise InvalidRequest(
                f"organisation {LAB_ORG!r} exists but is not a ministry-level node under the "
                "root; the Cloud Open Lab needs it",
                field="org",
                value=row.path,
            )
        return row

    def create_vendor(self, code: str, name: str, actor: str) -> Vendor:
        """A vendor and its organisation node under the Lab (created on first use)."""
        now = self.clock()
        with self.db.transaction() as session:
            if session.get(LabVendorRow, code) is not None:
                raise AlreadyExists("vendor", code)
            if session.get(OrganisationRow, code) is not None:
                raise AlreadyExists("org", code)
            lab = self._ensure_lab_org(session)
            org = OrganisationRow(
                code=code,
                name=name,
                kind=OrgKind.AGENCY.value,
                parent=lab.code,
                path=f"{lab.path}/{code}",
            )
            session.add(org)
            session.flush()
            ensure_node(session, code)
            row = LabVendorRow(
                code=code, name=name, org_path=org.path, created_by=actor, created_at=now
            )
            session.add(row)
            session.flush()
            return self._vendor(session, row)

    def _vendor(self, session: Session, row: LabVendorRow) -> Vendor:
        users = session.scalars(
            select(UserRow.name).where(in_subtree(UserRow.org_path, row.org_path))
        )
        return Vendor(
            code=row.code,
            name=row.name,
            org_path=row.org_path,
            users=sorted(users),
            created_at=row.created_at,
        )

    def vendors(self) -> builtins.list[Vendor]:
        """Every vendor, by code."""
        with self.db.transaction() as session:
            rows = session.scalars(select(LabVendorRow).order_by(LabVendorRow.code)).all()
            return [self._vendor(session, r) for r in rows]

    def vendor(self, code: str) -> Vendor:
        """One vendor, or VendorNotFound."""
        with self.db.transaction() as session:
            row = session.get(LabVendorRow, code)
            if row is None:
                raise VendorNotFound(code)
            return self._vendor(session, row)

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        *,
        name: str,
        vendor: str,
        ministry: str,
        offering: str,
        description: str,
        template: str,
        ttl_hours: int,
        actor: str,
        authorize: Callable[[TrialRef], None],
    ) -> Trial:
        """Record a trial request (``requested``); ``authorize`` judges the two nodes."""
        now = self.clock()
        trial_id = f"{vendor}-{name}"
        with self.db.transaction() as session:
            vendor_row = session.get(LabVendorRow, vendor)
            if vendor_row is None:
                raise VendorNotFound(vendor)
            ministry_row = session.get(OrganisationRow, ministry)
            if ministry_row is None:
                raise NotFound("org", ministry)
            if ministry_row.kind != OrgKind.MINISTRY.value or ministry_row.code == LAB_ORG:
                raise InvalidRequest(
                    f"ministry: {ministry!r} is a {ministry_row.kind}, not a ministry; a trial "
                    "is run for a ministry (e.g. moe)",
                    field="ministry",
                    value=ministry,
                    limit="a ministry code",
                )
            authorize(TrialRef(vendor_path=vendor_row.org_path, ministry_path=ministry_row.path))
            if session.get(LabTrialRow, trial_id) is not None:
                raise AlreadyExists("trial", trial_id)
            if session.get(OrganisationRow, trial_id) is not None:
                raise AlreadyExists("org", trial_id)
            row = LabTrialRow(
                id=trial_id,
                name=name,
                vendor=vendor,
                vendor_path=vendor_row.org_path,
                ministry=ministry,
                ministry_path=ministry_row.path,
                offering=offering,
                description=description,
                template=template,
                ttl_hours=ttl_hours,
                state=T.REQUESTED.value,
                stage=Stage.POC.value,
                requested_by=actor,
                requested_at=now,
                warned=[],
            )
            session.add(row)
            _event(
                session,
                row,
                now,
                "requested",
                actor,
                f"{vendor_row.name} asks for trial {name} for {ministry} with template "
                f"{template} for {show_hours(ttl_hours)}",
                template=template,
                ttl_hours=ttl_hours,
            )
            session.flush()
            return _trial(row)

    # -- reads --------------------------------------------------------------------------

    def _row(self, session: Session, trial_id: str, *, lock: bool = False) -> LabTrialRow:
        query = select(LabTrialRow).where(LabTrialRow.id == trial_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = session.scalar(query)
        if row is None:
            raise TrialNotFound(trial_id)
        return row

    def _model(self, session: Session, row: LabTrialRow) -> Trial:
        pending = _pending_extension(session, row.id)
        return _trial(row, pending.id if pending else None)

    def get(self, trial_id: str) -> tuple[Trial, TrialRef]:
        """One trial and its nodes (the caller judges visibility)."""
        with self.db.transaction() as session:
            row = self._row(session, trial_id)
            return self._model(session, row), ref_of(row)

    def list(
        self,
        *,
        state: TrialState | None = None,
        stage: Stage | None = None,
        vendor: str | None = None,
        ministry: str | None = None,
    ) -> builtins.list[tuple[Trial, TrialRef]]:
        """Trials matching the filters, newest request first."""
        query = select(LabTrialRow).order_by(LabTrialRow.requested_at.desc(), LabTrialRow.id)
        if state is not None:
            query = query.where(LabTrialRow.state == state.value)
        if stage is not None:
            query = query.where(LabTrialRow.stage == stage.value)
        if vendor is not None:
            query = query.where(LabTrialRow.vendor == vendor)
        if ministry is not None:
            query = query.where(LabTrialRow.ministry == ministry)
        with self.db.transaction() as session:
            pending = {
                r.trial_id: r.id
                for r in session.scalars(
                    select(LabExtensionRow).where(
                        LabExtensionRow.state == ExtensionState.PENDING.value
                    )
                )
            }
            return [(_trial(r, pending.get(r.id)), ref_of(r)) for r in session.scalars(query)]

    def detail(self, trial_id: str) -> TrialDetail:
        """Everything about one trial: history, evidence, sign-offs, servers, usage."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id)
            trial = self._model(session, row)
            members = session.scalars(
                select(UserRow.name)
                .where(in_subtree(UserRow.org_path, row.vendor_path))
                .order_by(UserRow.name)
            ).all()
            observers = session.scalars(
                select(UserRow.name)
                .where(in_subtree(UserRow.org_path, row.ministry_path))
                .order_by(UserRow.name)
            ).all()
            events = session.scalars(
                select(LabTrialEventRow)
                .where(LabTrialEventRow.trial_id == trial_id)
                .order_by(LabTrialEventRow.id)
            )
            servers: builtins.list[TrialInstance] = []
            if row.project_path:
                servers = [
                    TrialInstance(
                        id=i.id,
                        name=i.name,
                        flavor=i.flavor,
                        state=i.state,
                        desired_power=i.desired_power,
                    )
                    for i in session.scalars(
                        select(InstanceRow)
                        .where(
                            InstanceRow.org_path == row.project_path,
                            InstanceRow.state != InstanceState.DELETED.value,
                        )
                        .order_by(InstanceRow.created_at, InstanceRow.id)
                    )
                ]
            detail = TrialDetail(
                trial=trial,
                members=list(members),
                observers=list(observers),
                events=[TrialEvent.model_validate(e, from_attributes=True) for e in events],
                evidence=self._evidence(session, trial_id),
                signoffs=self._signoffs(session, trial_id),
                extensions=[
                    Extension.model_validate(x, from_attributes=True)
                    for x in session.scalars(
                        select(LabExtensionRow)
                        .where(LabExtensionRow.trial_id == trial_id)
                        .order_by(LabExtensionRow.id)
                    )
                ],
                instances=servers,
            )
        detail.usage = trial.final_usage or self._usage_so_far(trial, now)
        return detail

    def _usage_so_far(self, trial: Trial, now: datetime) -> TrialUsage | None:
        if trial.project_path is None or trial.activated_at is None:
            return None
        end = max(now, trial.activated_at)
        intervals = self._usage.intervals(trial.project_path, trial.activated_at, end)
        return lifecycle.final_usage(intervals, trial.activated_at, end)

    def _evidence(self, session: Session, trial_id: str) -> builtins.list[Evidence]:
        rows = session.scalars(
            select(LabEvidenceRow)
            .where(LabEvidenceRow.trial_id == trial_id)
            .order_by(LabEvidenceRow.id)
        )
        return [Evidence.model_validate(r, from_attributes=True) for r in rows]

    def _signoffs(self, session: Session, trial_id: str) -> builtins.list[Signoff]:
        rows = session.scalars(
            select(LabSignoffRow)
            .where(LabSignoffRow.trial_id == trial_id)
            .order_by(LabSignoffRow.id)
        )
        return [Signoff.model_validate(r, from_attributes=True) for r in rows]

    def evidence(self, trial_id: str) -> builtins.list[Evidence]:
        """A trial's evidence, oldest first."""
        with self.db.transaction() as session:
            self._row(session, trial_id)
            return self._evidence(session, trial_id)

    def events(self, trial_id: str) -> builtins.list[TrialEvent]:
        """A trial's history, oldest first."""
        with self.db.transaction() as session:
            self._row(session, trial_id)
            rows = session.scalars(
                select(LabTrialEventRow)
                .where(LabTrialEventRow.trial_id == trial_id)
                .order_by(LabTrialEventRow.id)
            )
            return [TrialEvent.model_validate(e, from_attributes=True) for e in rows]

    # -- decisions ----------------------------------------------------------------------

    def approve(
        self,
        trial_id: str,
        *,
        actor: str,
        comment: str,
        limits: Mapping[str, int],
        soft_threshold: float,
        authorize: Authorize | None = None,
    ) -> Trial:
        """Approve a request: create its project with ``limits`` and take one of the
        ministry's trial environments (``quota.exceeded`` when none is left)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            lifecycle.check_action("approve", TrialState(row.state), trial_id)
            self._take_trial_env(session, row)
            if session.get(OrganisationRow, row.id) is not None:
                raise AlreadyExists("org", row.id)
            project = OrganisationRow(
                code=row.id,
                name=f"{row.offering} (Open Lab trial)"[:200],
                kind=OrgKind.PROJECT.value,
                parent=row.vendor,
                path=f"{row.vendor_path}/{row.id}",
            )
            session.add(project)
            session.flush()
            quota_row = ensure_node(session, row.id)
            quota_row.limits = dict(limits)
            quota_row.soft_threshold = soft_threshold
            row.state = T.APPROVED.value
            row.project_path = project.path
            row.decided_by, row.decided_at = actor, now
            _event(
                session,
                row,
                now,
                "approved",
                actor,
                f"approved; project {project.path} created with the trial quota"
                + (f": {comment}" if comment else ""),
                project=project.path,
                limits=dict(limits),
            )
            session.flush()
            return _trial(row)

    def _take_trial_env(self, session: Session, row: LabTrialRow) -> None:
        """Check one more trial environment against every level of the ministry's path,
        with its quota rows locked root first (the order every quota change uses)."""
        codes = row.ministry_path.split("/")
        limits: dict[str, Limits] = {}
        usage: dict[str, Usage] = {}
        kinds = []
        for code in codes:
            ensure_node(session, code)
            node = session.scalar(
                select(QuotaNodeRow)
                .where(QuotaNodeRow.org == code)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            org = session.get(OrganisationRow, code)
            assert node is not None
            assert org is not None
            kinds.append(org.kind)
            limits[code] = Limits(node.limits, soft_threshold=node.soft_threshold)
            held = session.scalar(
                select(func.count())
                .select_from(LabTrialRow)
                .where(
                    in_subtree(LabTrialRow.ministry_path, org.path),
                    LabTrialRow.state.in_([s.value for s in lifecycle.HOLDS_ENVIRONMENT]),
                )
            )
            usage[code] = Usage.of(trial_envs=int(held or 0))
        result = check(codes, kinds, _ONE_ENV, usage, limits)
        if not result.ok:
            raise QuotaExceeded(result.message, [v.to_dict() for v in result.violations])

    def reject(
        self, trial_id: str, *, actor: str, reason: str, authorize: Authorize | None = None
    ) -> Trial:
        """Refuse a request (final)."""
        return self._simple(trial_id, "reject", T.REJECTED, "rejected", actor, reason, authorize)

    def cancel(
        self, trial_id: str, *, actor: str, reason: str, authorize: Authorize | None = None
    ) -> Trial:
        """Withdraw a request (``cancelled``), or end a running trial early (``expired``
        now; its servers are stopped and deleted after the grace period)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            lifecycle.check_action("cancel", TrialState(row.state), trial_id)
            if row.state == T.REQUESTED.value:
                new = T.CANCELLED
                message = "request withdrawn"
            else:
                new = T.EXPIRED
                message = "ended early; servers are stopped, and deleted after the grace period"
                row.ends_at = now
                row.expired_at = now
                self._freeze(session, row)
            old = row.state
            row.state = new.value
            self._close_pending_extension(session, row, now, actor)
            _event(
                session,
                row,
                now,
                "cancelled",
                actor,
                message + (f": {reason}" if reason else ""),
                previous=old,
            )
            session.flush()
            return self._model(session, row)

    def _simple(
        self,
        trial_id: str,
        action: str,
        new: TrialState,
        kind: str,
        actor: str,
        reason: str,
        authorize: Authorize | None = None,
    ) -> Trial:
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            lifecycle.check_action(action, TrialState(row.state), trial_id)
            row.state = new.value
            row.decided_by, row.decided_at = actor, now
            _event(session, row, now, kind, actor, kind + (f": {reason}" if reason else ""))
            session.flush()
            return _trial(row)

    # -- extensions ---------------------------------------------------------------------

    def request_extension(
        self,
        trial_id: str,
        *,
        hours: int,
        reason: str,
        actor: str,
        policy: LabPolicy,
        authorize: Authorize | None = None,
    ) -> Extension:
        """Ask for ``hours`` more; a lab operator decides (one pending request at a time)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            lifecycle.check_action("extend", TrialState(row.state), trial_id)
            self._check_life(row, hours, now, policy)
            if _pending_extension(session, trial_id) is not None:
                raise AlreadyExists("extension", f"pending for {trial_id}")
            ext = LabExtensionRow(
                trial_id=trial_id,
                hours=hours,
                reason=reason,
                state=ExtensionState.PENDING.value,
                requested_by=actor,
                requested_at=now,
            )
            session.add(ext)
            session.flush()
            _event(
                session,
                row,
                now,
                "extension-requested",
                actor,
                f"extension by {show_hours(hours)} requested" + (f": {reason}" if reason else ""),
                extension=ext.id,
                hours=hours,
            )
            return Extension.model_validate(ext, from_attributes=True)

    def _check_life(self, row: LabTrialRow, hours: int, now: datetime, policy: LabPolicy) -> None:
        life = lifecycle.life_after_extension(_clock(row), hours, now)
        if life > policy.max_life:
            most = policy.max_life - (life - timedelta(hours=hours))
            limit = max(int(most.total_seconds() // 3600), 0)
            raise InvalidRequest(
                f"by: extending trial {row.id} by {show_hours(hours)} would make it live "
                f"{show_hours(int(life.total_seconds() // 3600))}, more than the limit of "
                f"{show_hours(int(policy.max_life.total_seconds() // 3600))}; at most "
                f"{show_hours(limit)} more is possible",
                code="lab.extension_too_long",
                field="by",
                value=show_hours(hours),
                limit=show_hours(limit),
            )

    def decide_extension(
        self,
        trial_id: str,
        *,
        approve: bool,
        actor: str,
        comment: str,
        policy: LabPolicy,
        limits: Mapping[str, int],
        authorize: Authorize | None = None,
    ) -> tuple[Trial, Extension]:
        """Approve (move the end; revive an expired trial) or reject the pending extension."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            ext = _pending_extension(session, trial_id)
            if ext is None:
                raise NotFound("extension", f"pending for {trial_id}")
            ext.decided_by, ext.decided_at = actor, now
            suffix = f": {comment}" if comment else ""
            if not approve:
                ext.state = ExtensionState.REJECTED.value
                _event(
                    session,
                    row,
                    now,
                    "extension-rejected",
                    actor,
                    f"extension by {show_hours(ext.hours)} rejected{suffix}",
                    extension=ext.id,
                )
                session.flush()
                return _trial(row), Extension.model_validate(ext, from_attributes=True)
            lifecycle.check_action("extend", TrialState(row.state), trial_id)
            self._check_life(row, ext.hours, now, policy)
            before = TrialState(row.state)
            clock = lifecycle.extended(_clock(row), ext.hours, now, policy)
            assert clock.ends_at is not None
            row.ends_at, row.state, row.warned = clock.ends_at, clock.state.value, []
            if before is T.EXPIRED:
                row.expired_at = None
                node = ensure_node(session, row.id)
                node.limits = dict(limits)
            ext.state = ExtensionState.APPROVED.value
            _event(
                session,
                row,
                now,
                "extended",
                actor,
                f"extended by {show_hours(ext.hours)}; now ends {clock.ends_at.isoformat()}"
                + (
                    " (revived from expired; start your servers again)"
                    if before is T.EXPIRED
                    else ""
                )
                + suffix,
                extension=ext.id,
                ends_at=clock.ends_at.isoformat(),
                previous=before.value,
            )
            session.flush()
            return _trial(row), Extension.model_validate(ext, from_attributes=True)

    def _close_pending_extension(
        self, session: Session, row: LabTrialRow, now: datetime, actor: str
    ) -> None:
        ext = _pending_extension(session, row.id)
        if ext is not None:
            ext.state = ExtensionState.REJECTED.value
            ext.decided_by, ext.decided_at = actor, now

    # -- evidence and sign-off ----------------------------------------------------------

    def add_evidence(
        self,
        trial_id: str,
        *,
        kind: EvidenceKind,
        name: str,
        sha256: str,
        size_bytes: int,
        stage: Stage | None,
        uri: str | None,
        run_id: str | None,
        results: Mapping[str, float],
        actor: str,
        authorize: Authorize | None = None,
    ) -> Evidence:
        """Attach evidence to the trial's current stage (a checksum once per stage)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if authorize is not None:
                authorize(_trial(row))
            lifecycle.check_action("evidence", TrialState(row.state), trial_id)
            at = stages.evidence_stage(trial_id, Stage(row.stage), stage)
            duplicate = session.scalar(
                select(LabEvidenceRow).where(
                    LabEvidenceRow.trial_id == trial_id,
                    LabEvidenceRow.stage == at.value,
                    LabEvidenceRow.sha256 == sha256,
                )
            )
            if duplicate is not None:
                raise AlreadyExists("evidence", f"{sha256[:12]}... ({duplicate.name})")
            ev = LabEvidenceRow(
                trial_id=trial_id,
                stage=at.value,
                kind=kind.value,
                name=name,
                sha256=sha256,
                size_bytes=size_bytes,
                uri=uri,
                run_id=run_id,
                results=dict(results),
                added_by=actor,
                added_at=now,
            )
            session.add(ev)
            session.flush()
            _event(
                session,
                row,
                now,
                "evidence",
                actor,
                f"{kind.value} {name!r} ({size_bytes} bytes, sha256 {sha256[:12]}...) "
                f"attached to stage {at.value}",
                evidence=ev.id,
                stage=at.value,
            )
            return Evidence.model_validate(ev, from_attributes=True)

    def signoff(
        self,
        trial_id: str,
        *,
        stage: Stage | None,
        comment: str,
        actor: str,
        role: str,
        authorize: Callable[[Trial, Stage], None],
    ) -> tuple[Trial, Signoff]:
        """Sign the current stage off (``authorize`` judges the caller for that stage);
        the trial moves to the next stage, and a certification enters the catalogue."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            current = Stage(row.stage)
            lifecycle.check_action("signoff", TrialState(row.state), trial_id)
            if current is not Stage.CERTIFIED:
                authorize(_trial(row), current)
            evidence_ids = list(
                session.scalars(
                    select(LabEvidenceRow.id)
                    .where(
                        LabEvidenceRow.trial_id == trial_id,
                        LabEvidenceRow.stage == current.value,
                    )
                    .order_by(LabEvidenceRow.id)
                )
            )
            nxt = stages.check_signoff(trial_id, current, stage, len(evidence_ids))
            sig = LabSignoffRow(
                trial_id=trial_id,
                stage=current.value,
                signed_by=actor,
                role=role,
                at=now,
                comment=comment,
                evidence=evidence_ids,
            )
            session.add(sig)
            row.stage = nxt.value
            if nxt is Stage.CERTIFIED:
                row.certified_at, row.certified_by = now, actor
            session.flush()
            _event(
                session,
                row,
                now,
                "signed-off",
                actor,
                f"stage {current.value} signed off by {actor} ({role}) over "
                f"{len(evidence_ids)} piece(s) of evidence; now {nxt.value}"
                + (": the offering is in the catalogue" if nxt is Stage.CERTIFIED else "")
                + (f": {comment}" if comment else ""),
                stage=current.value,
                next=nxt.value,
                signoff=sig.id,
            )
            return self._model(session, row), Signoff.model_validate(sig, from_attributes=True)

    # -- catalogue ----------------------------------------------------------------------

    def catalog(self, trial_id: str | None = None) -> builtins.list[tuple[CatalogEntry, str]]:
        """Certified offerings (with their vendor's path), newest first."""
        query = (
            select(LabTrialRow, LabVendorRow.name)
            .join(LabVendorRow, LabVendorRow.code == LabTrialRow.vendor)
            .where(LabTrialRow.stage == Stage.CERTIFIED.value)
            .order_by(LabTrialRow.certified_at.desc(), LabTrialRow.id)
        )
        if trial_id is not None:
            query = query.where(LabTrialRow.id == trial_id)
        out = []
        with self.db.transaction() as session:
            for row, vendor_name in session.execute(query).all():
                evidence = self._evidence(session, row.id)
                order = list(Stage)
                results: dict[str, float] = {}
                for ev in sorted(evidence, key=lambda e: (order.index(e.stage), e.id)):
                    results.update(ev.results)
                assert row.certified_at is not None
                assert row.certified_by is not None
                entry = CatalogEntry(
                    trial_id=row.id,
                    offering=row.offering,
                    description=row.description,
                    vendor=row.vendor,
                    vendor_name=vendor_name,
                    certified_for=row.ministry,
                    template=row.template,
                    certified_at=row.certified_at,
                    certified_by=row.certified_by,
                    signoffs=self._signoffs(session, row.id),
                    evidence=evidence,
                    results=results,
                    usage=TrialUsage.model_validate(row.final_usage) if row.final_usage else None,
                )
                out.append((entry, row.vendor_path))
        return out

    # -- the expiry loop ----------------------------------------------------------------

    def live(self) -> builtins.list[Trial]:
        """Trials the expiry loop looks after, oldest request first."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(LabTrialRow)
                .where(LabTrialRow.state.in_([s.value for s in lifecycle.LOOP_STATES]))
                .order_by(LabTrialRow.requested_at, LabTrialRow.id)
            )
            return [_trial(r) for r in rows]

    def tick(self, trial_id: str, now: datetime, policy: LabPolicy, actor: str) -> Trial:
        """Apply the time-driven transitions due at ``now`` (activate, warn, expire)."""
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            result = lifecycle.tick(_clock(row), now, policy)
            clock = result.clock
            if result.activated:
                row.activated_at, row.ends_at = clock.activated_at, clock.ends_at
                _event(
                    session,
                    row,
                    now,
                    "activated",
                    actor,
                    f"environment ready; the trial ends {_when(clock.ends_at)}",
                    ends_at=_iso(clock.ends_at),
                )
            for warning in result.warnings:
                _event(
                    session,
                    row,
                    now,
                    "warning",
                    actor,
                    f"the trial ends {_when(warning.ends_at)} (in less than "
                    f"{show_hours(warning.lead_hours)}); ask for more time with "
                    f"`govcloud lab extend {row.id} --by 7d`",
                    lead_hours=warning.lead_hours,
                    ends_at=_iso(warning.ends_at),
                )
            if result.expired:
                row.expired_at = now
                self._freeze(session, row)
                self._close_pending_extension(session, row, now, actor)
                _event(
                    session,
                    row,
                    now,
                    "expired",
                    actor,
                    f"the trial ended; its servers are stopped, and deleted after "
                    f"{show_hours(int(policy.grace.total_seconds() // 3600))} unless it is "
                    "extended",
                )
            for old, new in result.transitions:
                if new is T.EXPIRING:  # activation and expiry have their own events above
                    _event(session, row, now, new.value, actor, f"{old.value} -> {new.value}")
            row.state = clock.state.value
            row.warned = sorted(clock.warned)
            return _trial(row)

    def _freeze(self, session: Session, row: LabTrialRow) -> None:
        """No new usage in an ended trial's project: every limit becomes zero."""
        if row.project_path:
            node = ensure_node(session, row.id)
            node.limits = dict.fromkeys(DIMENSIONS, 0)

    def finish_cleanup(self, trial_id: str, now: datetime, actor: str) -> Trial | None:
        """Mark an expired trial whose servers are all gone ``cleaned``, keeping the final
        usage record; None while a server is still live."""
        with self.db.transaction() as session:
            row = self._row(session, trial_id)
            if row.state != T.EXPIRED.value or self._live_servers(session, row):
                return None
            start = row.activated_at or row.decided_at or row.requested_at
            project = row.project_path
        end = max(now, start)
        # Read before the write transaction (SQLite allows one writer); with no live
        # server left and the project frozen, the intervals are final.
        usage = (
            lifecycle.final_usage(self._usage.intervals(project, start, end), start, end)
            if project
            else None
        )
        with self.db.transaction() as session:
            row = self._row(session, trial_id, lock=True)
            if row.state != T.EXPIRED.value or self._live_servers(session, row):
                return None
            if usage is not None:
                row.final_usage = usage.model_dump(mode="json")
            row.state = T.CLEANED.value
            row.cleaned_at = now
            summary = (
                f": {usage.instances} server(s), {usage.vcpu_hours:g} vCPU-hours, "
                f"{usage.ram_gib_hours:g} RAM GiB-hours"
                if usage
                else ""
            )
            _event(
                session,
                row,
                now,
                "cleaned",
                actor,
                f"servers deleted; final usage recorded{summary}",
            )
            return _trial(row)

    def _live_servers(self, session: Session, row: LabTrialRow) -> int:
        if not row.project_path:
            return 0
        count = session.scalar(
            select(func.count())
            .select_from(InstanceRow)
            .where(
                InstanceRow.org_path == row.project_path,
                InstanceRow.state != InstanceState.DELETED.value,
            )
        )
        return int(count or 0)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _when(when: datetime | None) -> str:
    return f"at {when:%Y-%m-%d %H:%M} UTC" if when else "(no end set)"
