"""Cloud Open Lab trials: recording a request, and reading trials (one, a filtered list,
the full detail with history, servers and usage so far, the history alone).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, InvalidRequest, NotFound
from controlplane.domain.instance import InstanceState
from controlplane.domain.lab import (
    LAB_ORG,
    Extension,
    ExtensionState,
    Stage,
    Trial,
    TrialDetail,
    TrialEvent,
    TrialInstance,
    TrialState,
    TrialUsage,
    VendorNotFound,
)
from controlplane.domain.org import OrgKind
from controlplane.lab import lifecycle
from controlplane.lab.access import TrialRef
from controlplane.lab.duration import show_hours
from controlplane.store.lab_rows import (
    LabBase,
    add_event,
    evidence_of,
    people_in,
    ref_of,
    signoffs_of,
    trial_model,
    trial_row,
    with_pending,
)
from controlplane.store.tables import (
    InstanceRow,
    LabExtensionRow,
    LabTrialEventRow,
    LabTrialRow,
    LabVendorRow,
    OrganisationRow,
)

T = TrialState


class LabTrials(LabBase):
    """Trial requests and reads."""

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
            add_event(
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
            return trial_model(row)

    def get(self, trial_id: str) -> tuple[Trial, TrialRef]:
        """One trial and its nodes (the caller judges visibility)."""
        with self.db.transaction() as session:
            row = trial_row(session, trial_id)
            return with_pending(session, row), ref_of(row)

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
            return [(trial_model(r, pending.get(r.id)), ref_of(r)) for r in session.scalars(query)]

    def detail(self, trial_id: str) -> TrialDetail:
        """Everything about one trial: history, evidence, sign-offs, servers, usage."""
        now = self.clock()
        with self.db.transaction() as session:
            row = trial_row(session, trial_id)
            trial = with_pending(session, row)
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
                members=people_in(session, row.vendor_path),
                observers=people_in(session, row.ministry_path),
                events=_events(session, trial_id),
                evidence=evidence_of(session, trial_id),
                signoffs=signoffs_of(session, trial_id),
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

    def events(self, trial_id: str) -> builtins.list[TrialEvent]:
        """A trial's history, oldest first."""
        with self.db.transaction() as session:
            trial_row(session, trial_id)
            return _events(session, trial_id)


def _events(session: Session, trial_id: str) -> list[TrialEvent]:
    """The trial's history, oldest first."""
    rows = session.scalars(
        select(LabTrialEventRow)
        .where(LabTrialEventRow.trial_id == trial_id)
        .order_by(LabTrialEventRow.id)
    )
    return [TrialEvent.model_validate(e, from_attributes=True) for e in rows]
