"""Cloud Open Lab decisions on a trial request: approve (creates the trial's project with
the template's quota and takes one of the ministry's ``trial_envs``, checked under the
ministry's quota locks, root first), reject, and cancel (withdraw a request, or end a
running trial early).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists
from controlplane.domain.lab import Trial, TrialState
from controlplane.domain.org import OrgKind
from controlplane.domain.quota import QuotaExceeded
from controlplane.lab import lifecycle
from controlplane.store.db import in_subtree
from controlplane.store.lab_rows import (
    Authorize,
    LabBase,
    add_event,
    close_pending_extension,
    freeze,
    locked,
    trial_model,
    with_pending,
)
from controlplane.store.quota import ensure_node
from controlplane.store.tables import LabTrialRow, OrganisationRow, QuotaNodeRow
from quotas import Limits, Usage, check

T = TrialState

#: The trial environments one trial holds while it has a project.
_ONE_ENV = Usage.of(trial_envs=1)


class LabDecisions(LabBase):
    """Approve, reject and cancel trials."""

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
            row = locked(session, trial_id, authorize)
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
            add_event(
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
            return trial_model(row)

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
            row = locked(session, trial_id, authorize)
            lifecycle.check_action("cancel", TrialState(row.state), trial_id)
            if row.state == T.REQUESTED.value:
                new = T.CANCELLED
                message = "request withdrawn"
            else:
                new = T.EXPIRED
                message = "ended early; servers are stopped, and deleted after the grace period"
                row.ends_at = now
                row.expired_at = now
                freeze(session, row)
            old = row.state
            row.state = new.value
            close_pending_extension(session, row, now, actor)
            add_event(
                session,
                row,
                now,
                "cancelled",
                actor,
                message + (f": {reason}" if reason else ""),
                previous=old,
            )
            session.flush()
            return with_pending(session, row)

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
            row = locked(session, trial_id, authorize)
            lifecycle.check_action(action, TrialState(row.state), trial_id)
            row.state = new.value
            row.decided_by, row.decided_at = actor, now
            add_event(session, row, now, kind, actor, kind + (f": {reason}" if reason else ""))
            session.flush()
            return trial_model(row)
