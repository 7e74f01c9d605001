"""The scheduler's fleet snapshot, read from the database and kept between decisions.

Reading every host for every decision costs ~8 ms at 1,000 hosts and ~80 ms at 10,000, more
than the decision itself. A :class:`FleetIndex` (one per ``Store``, so one per control-plane
process) keeps the last snapshot and reuses it while it is still current:

- **The fleet epoch** (migration 0012) is a counter that database triggers bump whenever
  room may have appeared or a host's eligibility changed: a host added or removed; its
  state, data centre, traits or usable totals changed; its usage went down (a release); a
  data centre's state changed. Every decision reads the epoch (one tiny query) and reloads
  the whole snapshot when it moved, whoever changed what.
- **Claims** only add usage and do not move the epoch. The claim's UPDATE returns the host's
  new row, which this process patches into its snapshot after commit (:meth:`patch`);
  claims by other processes are not seen until the next reload (at most ``max_age_s``
  later). A stale snapshot is never a correctness problem, because the claim re-checks
  everything in its conditional UPDATE (state, data centre, room) and the commit re-checks
  traits and group rules: it costs a lost race (re-select on a reloaded host) at worst.
- **Before declaring a request unplaceable**, the caller reloads (:meth:`reload`) and decides
  again, so a stale snapshot never leaves a request PENDING that a fresh one would place.

On PostgreSQL the epoch is a sequence, which moves when the change is made rather than when
it commits; a reload that races with that commit can miss the change until the next reload
(``max_age_s``). The re-checks above make that harmless too.

The snapshot is a :class:`~controlplane.scheduler.fleet.Fleet` (the scheduler's column
form); a patch copies its columns and changes the claimed positions only, and the view of
one data centre is derived once per snapshot.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Text, literal_column, select, type_coerce
from sqlalchemy.orm import Session

from controlplane.domain.datacentre import DataCentreState
from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.view import FleetView, HostView
from controlplane.store.tables import DataCentreRow, HostRow

#: The host columns the scheduler reads, in :func:`host_view`'s argument order.
FLEET_COLUMNS = (
    HostRow.id,
    HostRow.name,
    HostRow.datacentre,
    HostRow.state,
    HostRow.usable_vcpus,
    HostRow.usable_ram_mib,
    HostRow.usable_disk_gib,
    HostRow.used_vcpus,
    HostRow.used_ram_mib,
    HostRow.used_disk_gib,
    type_coerce(HostRow.traits, Text),  # the raw JSON text: most hosts have "[]"
    HostRow.generation,
)
_NO_TRAITS: frozenset[str] = frozenset()

#: How long a snapshot is reused at most when the epoch did not move (it then misses only
#: other processes' claims, which the claim's UPDATE re-checks anyway).
DEFAULT_MAX_AGE_S = 5.0


def _traits(raw: str | list[str] | None) -> frozenset[str]:
    """Traits from the raw column: JSON text on SQLite, already a list from psycopg."""
    if not raw or raw == "[]":
        return _NO_TRAITS
    return frozenset(json.loads(raw) if isinstance(raw, str) else raw)


def host_view(row: Sequence[Any], datacentre_active: bool) -> HostView:
    """A :data:`FLEET_COLUMNS` row as the scheduler's record."""
    hid, name, dc, state, uv, ur, ud, cv, cr, cd, traits, generation = row
    return HostView(
        hid, name, dc, state, uv, ur, ud, cv, cr, cd, _traits(traits), datacentre_active, generation
    )


def active_datacentres(session: Session) -> set[str]:
    """Codes of the data centres that take placements."""
    return {
        code
        for code, state in session.execute(select(DataCentreRow.code, DataCentreRow.state))
        if state == DataCentreState.ACTIVE.value
    }


def fleet_view(session: Session, datacentre: str | None = None) -> FleetView:
    """A fresh snapshot of the hosts the scheduler may consider, read in ``session``.

    One Core SELECT of just the columns the scheduler reads (no ORM objects), plus the data
    centres' states; each host becomes a slotted dataclass of plain values.
    """
    active = active_datacentres(session)
    query = select(*FLEET_COLUMNS)
    if datacentre is not None:
        query = query.where(HostRow.datacentre == datacentre)
    return tuple(host_view(row, row[2] in active) for row in session.execute(query))


#: The fleet epoch as a scalar SQL expression, per dialect: a sequence on PostgreSQL (0
#: before its first use), a row on SQLite. Other statements may embed it (the create path
#: reads it with its other look-ups in one round trip).
_EPOCH_SQL = {
    "postgresql": "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fleet_epoch_seq)",
    "sqlite": "(SELECT n FROM fleet_epoch WHERE id = 1)",
}


def epoch_column(dialect: str) -> ColumnElement[int]:
    """The fleet epoch as a column to select, for ``dialect``."""
    return literal_column(_EPOCH_SQL[dialect], Integer).label("fleet_epoch")


_READ_EPOCH = {name: select(epoch_column(name)) for name in _EPOCH_SQL}


def read_epoch(session: Session) -> int:
    """The fleet epoch (see the module doc)."""
    connection = session.connection()
    return int(connection.execute(_READ_EPOCH[connection.dialect.name]).scalar_one())


class FleetIndex:
    """One process's reusable fleet snapshot (thread-safe; see the module doc)."""

    def __init__(
        self, max_age_s: float = DEFAULT_MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._fleet = Fleet.of(())
        self._epoch: int | None = None
        self._loaded_at = 0.0

    def view(
        self, session: Session, datacentre: str | None, epoch: int | None = None
    ) -> tuple[Fleet, bool]:
        """The snapshot of ``datacentre`` (None: every host) and whether it was read from
        the database just now (False: reused). ``epoch``: the fleet epoch if the caller
        read it in this transaction already (see :func:`epoch_column`)."""
        if epoch is None:
            epoch = read_epoch(session)
        with self._lock:
            current = (
                self._epoch == epoch
                and self.max_age_s > 0
                and self.clock() - self._loaded_at < self.max_age_s
            )
            fleet = self._fleet
        if current:
            return _of(fleet, datacentre), False
        return self._load(session, epoch, datacentre), True

    def reload(self, session: Session, datacentre: str | None) -> Fleet:
        """Read the whole fleet again (before declaring a request unplaceable)."""
        return self._load(session, read_epoch(session), datacentre)

    def patch(self, hosts: Iterable[HostView]) -> None:
        """Take in rows this process just committed (its claims), newest generation wins."""
        with self._lock:
            fleet = self._fleet
            newer = []
            for host in hosts:
                position = fleet.position(host.id)
                if position is not None and fleet.host(position).generation < host.generation:
                    newer.append(host)
            self._fleet = fleet.replace(newer)

    def forget(self) -> None:
        """Drop the snapshot: the next decision reads the fleet again (after a lost race)."""
        with self._lock:
            self._epoch = None

    def _load(self, session: Session, epoch: int, datacentre: str | None) -> Fleet:
        # The epoch is read before the hosts: a change that lands in between is either in
        # the rows read, or moves the epoch past the one stored here, forcing a reload.
        fleet = Fleet.of(fleet_view(session))
        with self._lock:
            self._fleet, self._epoch, self._loaded_at = fleet, epoch, self.clock()
        return _of(fleet, datacentre)


def _of(fleet: Fleet, datacentre: str | None) -> Fleet:
    """The whole fleet, or one data centre's hosts (memoised by the fleet)."""
    return fleet if datacentre is None else fleet.only(datacentre)
