"""The append-only audit log: rows are inserted, never updated or deleted."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.domain.audit import AuditEvent
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import AuditEventRow


class AuditRepo:
    """Append audit events and read them back, newest first, by scope."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, event: AuditEvent) -> None:
        """Record one event (its ``id`` is assigned by the database)."""
        with self.db.transaction() as session:
            session.add(AuditEventRow(**event.model_dump(exclude={"id"})))

    def list(
        self,
        scope: str,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
    ) -> list[AuditEvent]:
        """Events about ``scope``'s subtree, newest first; ``before`` pages by id."""
        query = select(AuditEventRow).where(in_subtree(AuditEventRow.organisation, scope))
        if before is not None:
            query = query.where(AuditEventRow.id < before)
        if actor:
            query = query.where(AuditEventRow.actor == actor)
        if action:
            query = query.where(AuditEventRow.action == action)
        if request_id:
            query = query.where(AuditEventRow.request_id == request_id)
        with self.db.transaction() as session:
            rows = session.scalars(query.order_by(AuditEventRow.id.desc()).limit(limit))
            return [AuditEvent.model_validate(r, from_attributes=True) for r in rows]
