"""Cloud Open Lab expiry: the time-driven transitions the ``LabLoop`` applies (activate,
warn, expire and freeze the quota) and the final cleanup that records a trial's usage
once its servers are gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.instance import InstanceState
from controlplane.domain.lab import Trial, TrialState
from controlplane.lab import lifecycle
from controlplane.lab.duration import show_hours
from controlplane.lab.lifecycle import LabPolicy
from controlplane.store.lab_rows import (
    LabBase,
    add_event,
    clock_of,
    close_pending_extension,
    freeze,
    trial_model,
    trial_row,
)
from controlplane.store.tables import InstanceRow, LabTrialRow

T = TrialState


class LabExpiry(LabBase):
    """What the expiry loop reads and changes."""

    def live(self) -> list[Trial]:
        """Trials the expiry loop looks after, oldest request first."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(LabTrialRow)
                .where(LabTrialRow.state.in_([s.value for s in lifecycle.LOOP_STATES]))
                .order_by(LabTrialRow.requested_at, LabTrialRow.id)
            )
            return [trial_model(r) for r in rows]

    def tick(self, trial_id: str, now: datetime, policy: LabPolicy, actor: str) -> Trial:
        """Apply the time-driven transitions due at ``now`` (activate, warn, expire)."""
        with self.db.transaction() as session:
            row = trial_row(session, trial_id, lock=True)
            result = lifecycle.tick(clock_of(row), now, policy)
            clock = result.clock
            if result.activated:
                row.activated_at, row.ends_at = clock.activated_at, clock.ends_at
                add_event(
                    session,
                    row,
                    now,
                    "activated",
                    actor,
                    f"environment ready; the trial ends {_when(clock.ends_at)}",
                    ends_at=_iso(clock.ends_at),
                )
            for warning in result.warnings:
                add_event(
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
                freeze(session, row)
                close_pending_extension(session, row, now, actor)
                add_event(
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
                    add_event(session, row, now, new.value, actor, f"{old.value} -> {new.value}")
            row.state = clock.state.value
            row.warned = sorted(clock.warned)
            return trial_model(row)

    def finish_cleanup(self, trial_id: str, now: datetime, actor: str) -> Trial | None:
        """Mark an expired trial whose servers are all gone ``cleaned``, keeping the final
        usage record; None while a server is still live."""
        with self.db.transaction() as session:
            row = trial_row(session, trial_id)
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
            row = trial_row(session, trial_id, lock=True)
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
            add_event(
                session,
                row,
                now,
                "cleaned",
                actor,
                f"servers deleted; final usage recorded{summary}",
            )
            return trial_model(row)

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
