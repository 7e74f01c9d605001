"""Cloud Open Lab extensions: asking for more time (one pending request per trial, within
the policy's maximum life) and a lab operator's decision (approval moves the end and
revives an expired trial).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from controlplane.domain.errors import AlreadyExists, InvalidRequest, NotFound
from controlplane.domain.lab import Extension, ExtensionState, Trial, TrialState
from controlplane.lab import lifecycle
from controlplane.lab.duration import show_hours
from controlplane.lab.lifecycle import LabPolicy
from controlplane.store.lab_rows import (
    Authorize,
    LabBase,
    add_event,
    clock_of,
    locked,
    pending_extension,
    trial_model,
)
from controlplane.store.quota import ensure_node
from controlplane.store.tables import LabExtensionRow, LabTrialRow

T = TrialState


class LabExtensions(LabBase):
    """Extension requests and decisions."""

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
            row = locked(session, trial_id, authorize)
            lifecycle.check_action("extend", TrialState(row.state), trial_id)
            self._check_life(row, hours, now, policy)
            if pending_extension(session, trial_id) is not None:
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
            add_event(
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
        life = lifecycle.life_after_extension(clock_of(row), hours, now)
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
            row = locked(session, trial_id, authorize)
            ext = pending_extension(session, trial_id)
            if ext is None:
                raise NotFound("extension", f"pending for {trial_id}")
            ext.decided_by, ext.decided_at = actor, now
            suffix = f": {comment}" if comment else ""
            if not approve:
                ext.state = ExtensionState.REJECTED.value
                add_event(
                    session,
                    row,
                    now,
                    "extension-rejected",
                    actor,
                    f"extension by {show_hours(ext.hours)} rejected{suffix}",
                    extension=ext.id,
                )
                session.flush()
                return trial_model(row), Extension.model_validate(ext, from_attributes=True)
            lifecycle.check_action("extend", TrialState(row.state), trial_id)
            self._check_life(row, ext.hours, now, policy)
            before = TrialState(row.state)
            clock = lifecycle.extended(clock_of(row), ext.hours, now, policy)
            assert clock.ends_at is not None
            row.ends_at, row.state, row.warned = clock.ends_at, clock.state.value, []
            if before is T.EXPIRED:
                row.expired_at = None
                node = ensure_node(session, row.id)
                node.limits = dict(limits)
            ext.state = ExtensionState.APPROVED.value
            add_event(
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
            return trial_model(row), Extension.model_validate(ext, from_attributes=True)
