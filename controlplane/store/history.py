"""Instance state history for SLA accounting, recorded without touching the repositories.

:func:`install` registers a ``before_flush`` listener on a :class:`Database`'s session
factory. On every flush it looks at the new and changed ``InstanceRow`` objects and, for
each one whose ``state``, ``desired_power`` (the tenant's start/stop intent) or ``host_id``
changed, adds one ``instance_events`` row in the same transaction: the change is recorded
exactly when it is committed, and never when it is rolled back.

The event's time is the row's own timestamp for the change (``updated_at``, or
``scheduled_at``/``launched_at``/``deleted_at`` when that is what moved), so history and
row agree to the microsecond; a change that touched none of them is stamped with the
store's clock. Statements that bypass the ORM bypass this listener too: code that changes
instance state in bulk must call :func:`record` itself, and code that inserts instance rows
with Core (creation's hot path) :func:`record_inserted`.

:func:`events` reads a set of instances' histories back as pure
:class:`controlplane.sla.history.StateEvent` values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import Session

from controlplane.sla.history import StateEvent
from controlplane.store.db import Database
from controlplane.store.tables import InstanceEventRow, InstanceRow

#: Columns whose change is an SLA event.
TRACKED = ("state", "desired_power", "host_id")
#: Timestamps that may say when the change happened, most specific first.
_STAMPS = ("deleted_at", "launched_at", "scheduled_at", "updated_at")


def _changed(row: InstanceRow, attr: str) -> tuple[bool, Any]:
    """Whether ``attr`` changed in this flush, and its previous value (None if new)."""
    hist = inspect(row).attrs[attr].history
    if not hist.has_changes():
        return False, None
    return True, hist.deleted[0] if hist.deleted else None


def _stamp(row: InstanceRow, new: bool, clock: Callable[[], datetime]) -> datetime:
    if new:
        return row.created_at
    stamps: list[datetime] = [
        getattr(row, name) for name in _STAMPS if _changed(row, name)[0] and getattr(row, name)
    ]
    return max(stamps) if stamps else clock()


def record(session: Session, row: InstanceRow, at: datetime, from_state: str | None) -> None:
    """Add the event "``row`` is now as it is" (for code that bypasses the listener)."""
    session.add(
        InstanceEventRow(
            instance_id=row.id,
            org_path=row.org_path,
            datacentre=row.datacentre,
            host_id=row.host_id,
            from_state=from_state,
            to_state=row.state,
            desired_power=row.desired_power,
            at=at,
        )
    )


_INSERT_EVENTS = insert(InstanceEventRow)


def record_inserted(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add the first event of instance rows inserted without the ORM (``rows``: their
    column values), stamped with their ``created_at`` as the listener stamps new rows."""
    session.connection().execute(
        _INSERT_EVENTS,
        [
            {
                "instance_id": row["id"],
                "org_path": row["org_path"],
                "datacentre": row["datacentre"],
                "host_id": row["host_id"],
                "from_state": None,
                "to_state": row["state"],
                "desired_power": row["desired_power"],
                "at": row["created_at"],
            }
            for row in rows
        ],
    )


def install(db: Database, clock: Callable[[], datetime]) -> None:
    """Record instance history in every transaction of ``db`` (call once per database)."""

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        for row in [*session.new, *session.dirty]:
            if not isinstance(row, InstanceRow):
                continue
            new = row in session.new
            state_changed, old_state = _changed(row, "state")
            if not new and not any(_changed(row, attr)[0] for attr in TRACKED):
                continue
            if not new and not state_changed:
                old_state = row.state
            record(session, row, _stamp(row, new, clock), None if new else old_state)

    # The session factory is the Database's own: listeners stay per database, never global.
    event.listen(db._sessions, "before_flush", before_flush)


def events(session: Session, instance_ids: Iterable[str]) -> dict[str, list[StateEvent]]:
    """The recorded events of ``instance_ids``, oldest first, by instance id."""
    ids = list(instance_ids)
    out: defaultdict[str, list[StateEvent]] = defaultdict(list)
    for start in range(0, len(ids), 500):  # bounded IN lists
        rows = session.scalars(
            select(InstanceEventRow)
            .where(InstanceEventRow.instance_id.in_(ids[start : start + 500]))
            .order_by(InstanceEventRow.instance_id, InstanceEventRow.at, InstanceEventRow.id)
        )
        for r in rows:
            out[r.instance_id].append(
                StateEvent(
                    at=r.at,
                    state=r.to_state,
                    desired_power=r.desired_power,
                    host_id=r.host_id,
                    datacentre=r.datacentre,
                )
            )
    return dict(out)
