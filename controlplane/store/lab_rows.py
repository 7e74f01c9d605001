"""Cloud Open Lab rows: the helpers every Lab repository module shares.

Owns the trial row -> :class:`~controlplane.domain.lab.Trial` conversion, the row lookup
(with ``SELECT ... FOR UPDATE`` when a change follows), the trial's history events, the
reads of its evidence and sign-offs, and the two changes several transitions make (freeze
an ended trial's quota, close its pending extension). :class:`LabBase` is the base of the
mixins that make up :class:`~controlplane.store.lab.LabRepo`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.lab import (
    Evidence,
    ExtensionState,
    Signoff,
    Stage,
    Trial,
    TrialNotFound,
    TrialState,
    TrialUsage,
)
from controlplane.lab import lifecycle
from controlplane.lab.access import TrialRef
from controlplane.store.db import Database, in_subtree
from controlplane.store.quota import ensure_node
from controlplane.store.tables import (
    LabEvidenceRow,
    LabExtensionRow,
    LabSignoffRow,
    LabTrialEventRow,
    LabTrialRow,
    UserRow,
)
from controlplane.store.usage import UsageRepo
from quotas import DIMENSIONS

#: Judges the caller against the locked trial (raises to refuse).
Authorize = Callable[[Trial], None]


class LabBase:
    """The database, the clock and the usage reader every Lab mixin uses."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._usage = UsageRepo(db)


def trial_model(row: LabTrialRow, pending: int | None = None) -> Trial:
    """The trial of ``row`` (``pending``: the id of its pending extension)."""
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


def clock_of(row: LabTrialRow) -> lifecycle.Clock:
    """The row's timing, as the pure lifecycle rules take it."""
    return lifecycle.Clock(
        state=TrialState(row.state),
        ttl_hours=row.ttl_hours,
        activated_at=row.activated_at,
        ends_at=row.ends_at,
        warned=frozenset(row.warned or []),
    )


def add_event(
    session: Session,
    row: LabTrialRow,
    now: datetime,
    kind: str,
    actor: str,
    message: str,
    **details: object,
) -> None:
    """Append an event to the trial's history, in the caller's transaction."""
    session.flush()  # the trial row first: no relationship() orders the inserts
    session.add(
        LabTrialEventRow(
            trial_id=row.id, at=now, kind=kind, actor=actor, message=message, details=details
        )
    )


def trial_row(session: Session, trial_id: str, *, lock: bool = False) -> LabTrialRow:
    """The trial's row (locked, and re-read, with ``lock``), or TrialNotFound."""
    query = select(LabTrialRow).where(LabTrialRow.id == trial_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalar(query)
    if row is None:
        raise TrialNotFound(trial_id)
    return row


def locked(session: Session, trial_id: str, authorize: Authorize | None) -> LabTrialRow:
    """The trial's row, locked, after ``authorize`` (if any) accepted the caller."""
    row = trial_row(session, trial_id, lock=True)
    if authorize is not None:
        authorize(trial_model(row))
    return row


def pending_extension(session: Session, trial_id: str) -> LabExtensionRow | None:
    """The trial's extension request waiting for a decision, if any."""
    return session.scalar(
        select(LabExtensionRow).where(
            LabExtensionRow.trial_id == trial_id,
            LabExtensionRow.state == ExtensionState.PENDING.value,
        )
    )


def with_pending(session: Session, row: LabTrialRow) -> Trial:
    """The trial of ``row`` with its pending extension's id."""
    pending = pending_extension(session, row.id)
    return trial_model(row, pending.id if pending else None)


def close_pending_extension(session: Session, row: LabTrialRow, now: datetime, actor: str) -> None:
    """Reject the trial's pending extension (the trial ended without it)."""
    ext = pending_extension(session, row.id)
    if ext is not None:
        ext.state = ExtensionState.REJECTED.value
        ext.decided_by, ext.decided_at = actor, now


def freeze(session: Session, row: LabTrialRow) -> None:
    """No new usage in an ended trial's project: every limit becomes zero."""
    if row.project_path:
        node = ensure_node(session, row.id)
        node.limits = dict.fromkeys(DIMENSIONS, 0)


def people_in(session: Session, path: str) -> list[str]:
    """Names of the users in ``path``'s subtree, ordered by name (a vendor's people, a
    ministry's observers)."""
    query = select(UserRow.name).where(in_subtree(UserRow.org_path, path)).order_by(UserRow.name)
    return list(session.scalars(query))


def evidence_of(session: Session, trial_id: str) -> list[Evidence]:
    """The trial's evidence, oldest first."""
    rows = session.scalars(
        select(LabEvidenceRow)
        .where(LabEvidenceRow.trial_id == trial_id)
        .order_by(LabEvidenceRow.id)
    )
    return [Evidence.model_validate(r, from_attributes=True) for r in rows]


def signoffs_of(session: Session, trial_id: str) -> list[Signoff]:
    """The trial's sign-offs, oldest first."""
    rows = session.scalars(
        select(LabSignoffRow).where(LabSignoffRow.trial_id == trial_id).order_by(LabSignoffRow.id)
    )
    return [Signoff.model_validate(r, from_attributes=True) for r in rows]
