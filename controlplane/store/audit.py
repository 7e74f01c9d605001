"""The append-only audit log: rows are inserted, never updated or deleted.

An event is normally appended in its own transaction once the call has been answered
(:meth:`AuditRepo.append`). A hot mutating call may instead stage its event with
:meth:`AuditRepo.within`: the event is then inserted by the same transaction that makes
the change (the first one in that block that inserts rows of the named table; code inserting them
without the ORM calls :func:`note_inserted`), so the change and its audit record commit,
or roll back, together, for one commit instead of two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from controlplane.domain.audit import AuditEvent
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import AuditEventRow


@dataclass
class StagedAudit:
    """An audit event to insert in the transaction that creates rows of ``table``.

    ``build`` receives the primary keys of those rows and returns the event. Once that
    transaction has committed, ``committed`` holds the event as written.
    """

    table: str
    build: Callable[[list[str]], AuditEvent]
    ids: list[str] = field(default_factory=list)
    collecting: Session | None = None
    staged_in: Session | None = None
    staged: AuditEvent | None = None
    committed: AuditEvent | None = None


_STAGED: ContextVar[StagedAudit | None] = ContextVar("govcloud_staged_audit", default=None)


#: Built once: an audit row is inserted by every mutating call.
_INSERT = insert(AuditEventRow)


def _row(event_: AuditEvent) -> dict[str, Any]:
    return event_.model_dump(exclude={"id"})


def _install(db: Database) -> None:
    """Session listeners that write a staged event inside the changing transaction."""

    def after_flush(session: Session, _context: Any) -> None:
        staged = _STAGED.get()
        if staged is None or staged.committed is not None:
            return
        if staged.collecting is not session:  # ids belong to one transaction's session
            staged.collecting, staged.ids = session, []
        staged.ids += _new_ids(session, staged.table)

    def before_commit(session: Session) -> None:
        staged = _STAGED.get()
        if staged is None or staged.committed is not None or staged.staged_in is not None:
            return
        ids = staged.ids if staged.collecting is session else []
        ids = ids + [i for i in _new_ids(session, staged.table) if i not in ids]
        if not ids:
            return  # a read-only or unrelated transaction of the same call
        staged.staged = staged.build(ids)
        staged.staged_in = session
        session.connection().execute(_INSERT, _row(staged.staged))

    def after_commit(session: Session) -> None:
        staged = _STAGED.get()
        if staged is not None and staged.staged_in is session:
            staged.committed, staged.staged_in = staged.staged, None

    def after_rollback(session: Session) -> None:
        staged = _STAGED.get()
        if staged is None or staged.committed is not None:
            return
        if staged.staged_in is session:
            staged.staged_in, staged.staged = None, None
        if staged.collecting is session:
            staged.collecting, staged.ids = None, []

    # The session factory is the Database's own: listeners stay per database, never global.
    event.listen(db._sessions, "after_flush", after_flush)
    event.listen(db._sessions, "before_commit", before_commit)
    event.listen(db._sessions, "after_commit", after_commit)
    event.listen(db._sessions, "after_rollback", after_rollback)


def note_inserted(session: Session, table: str, ids: list[str]) -> None:
    """Tell the staged event of this context (if it waits for rows of ``table``) that
    ``session``'s transaction inserted ``ids`` without the ORM, which the flush listener
    cannot see."""
    staged = _STAGED.get()
    if staged is None or staged.committed is not None or staged.table != table:
        return
    if staged.collecting is not session:
        staged.collecting, staged.ids = session, []
    staged.ids += ids


def _new_ids(session: Session, table: str) -> list[str]:
    """Primary keys of the rows of ``table`` pending insertion in ``session``."""
    return [str(row.id) for row in session.new if getattr(row, "__tablename__", None) == table]


class AuditRepo:
    """Append audit events and read them back, newest first, by scope."""

    def __init__(self, db: Database) -> None:
        self.db = db
        _install(db)

    def append(self, event: AuditEvent) -> None:
        """Record one event in its own transaction (its ``id`` is assigned by the database)."""
        with self.db.transaction() as session:
            session.connection().execute(_INSERT, _row(event))

    @contextmanager
    def within(self, staged: StagedAudit) -> Iterator[StagedAudit]:
        """Write ``staged``'s event in the first transaction of this block (in this
        thread or context) that inserts rows of ``staged.table``."""
        token = _STAGED.set(staged)
        try:
            yield staged
        finally:
            _STAGED.reset(token)

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
