"""Engine and transactions: SQLite (embedded default) or PostgreSQL, by URL.

SQLite runs in WAL mode and takes its write lock at ``BEGIN`` (``BEGIN IMMEDIATE``), so
concurrent writers queue instead of failing mid-transaction. It syncs at checkpoints, not
at every commit (``PRAGMA synchronous=NORMAL``, ~0.1 ms instead of an fsync per commit): a
crash of govcloud loses nothing committed and the database stays consistent, but a power
loss or kernel crash can lose the last transactions. ``?synchronous=full`` in the URL
syncs every commit; production runs PostgreSQL. PostgreSQL runs at READ
COMMITTED; correctness under concurrency comes from conditional UPDATEs (see placement).

``Database.read()`` is a read-only transaction for hot polling reads (agents' assignment
lists and long-poll keys, instance listings): on SQLite it runs on a second engine whose
connections begin with a deferred ``BEGIN`` and refuse writes, so it neither takes nor
waits for the write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, or_
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.domain.errors import Conflict, InvalidRequest

#: SQLite ``PRAGMA synchronous`` levels a URL may ask for with ``?synchronous=``.
SQLITE_SYNCHRONOUS = ("off", "normal", "full", "extra")


def make_engine(url: str, *, reader: bool = False) -> Engine:
    """Create an engine with the settings govcloud relies on for ``url``'s backend.

    ``reader`` (SQLite): an engine for read-only transactions, which begin with a deferred
    ``BEGIN`` (no write lock) and whose connections refuse writes (``query_only``).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        synchronous = parsed.query.get("synchronous", "normal")
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise InvalidRequest(
                f"sqlite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                f"not {synchronous!r}",
                field="database_url",
                value=str(synchronous),
            )
        parsed = parsed.difference_update_query(["synchronous"])
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=8
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            if reader:
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """An engine plus a session factory; ``transaction()`` is the unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: SQLite admits one writer at a time, and its busy handler makes a waiting
        #: connection sleep and retry; threads of this process queue here instead, so the
        #: lock passes to the next one as soon as a transaction ends (other processes
        #: still meet the busy handler). Re-entrant, so a nested transaction behaves as
        #: it would without this lock.
        self._writer = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        #: SQLite files: read-only transactions on their own engine, which take no write
        #: lock and wait for no writer (WAL readers see the last commit). An in-memory
        #: database is private to its connection, so it has none.
        in_memory = make_url(url).database in (None, "", ":memory:")
        self._reader_engine = (
            make_engine(url, reader=True) if self._writer is not None and not in_memory else None
        )
        self._reader = (
            sessionmaker(self._reader_engine, expire_on_commit=False)
            if self._reader_engine is not None
            else None
        )

    @property
    def is_postgres(self) -> bool:
        """Whether this is a PostgreSQL database."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on any exception.

        A value the database refuses as data (PostgreSQL: a NUL character, a string longer
        than its column) is the caller's input, not a server fault: InvalidRequest.
        """
        try:
            with self._writer or nullcontext(), self._sessions() as session, session.begin():
                yield session
        except DataError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
            raise InvalidRequest(
                f"a value in the request cannot be stored: {reason}",
                code="request.unstorable",
                reason=reason,
            ) from exc
        except IntegrityError as exc:
            # A unique key taken by a concurrent transaction between our check and insert.
            raise Conflict(
                "a concurrent request created the same resource; retry", code="conflict.exists"
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (a write in it fails): on SQLite it neither takes nor
        waits for the write lock, so polling readers (agents' long-polls, listings) do not
        queue behind creates; on PostgreSQL it is :meth:`transaction`."""
        if self._reader is None:
            with self.transaction() as session:
                yield session
            return
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
        if self._reader_engine is not None:
            self._reader_engine.dispose()


def in_subtree(column: Any, scope: str) -> Any:
    """SQL condition: a materialised org path ``column`` lies in ``scope``'s subtree."""
    return or_(column == scope, column.startswith(scope + "/"))
