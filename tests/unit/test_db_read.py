"""Read-only transactions (``Database.read``, ``controlplane/store/db.py``) on SQLite: they
neither take nor wait for the write lock, see only committed data, and refuse writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from controlplane.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path}/read.db")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    return database


def test_a_read_does_not_wait_for_an_open_write(db: Database) -> None:
    read_done = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        with db.read() as session:
            seen.append(int(session.execute(text("SELECT sum(n) FROM t")).scalar_one()))
        read_done.set()

    with db.transaction() as session:  # holds SQLite's write lock and this process's
        session.execute(text("INSERT INTO t VALUES (41)"))
        thread = threading.Thread(target=reader)
        thread.start()
        # Finishes while the write is still open: it did not queue behind it.
        assert read_done.wait(10)
    thread.join()
    assert seen == [1]  # the uncommitted insert is not visible
    with db.read() as session:
        assert session.execute(text("SELECT sum(n) FROM t")).scalar_one() == 42
    db.dispose()


def test_a_write_in_a_read_transaction_fails(db: Database) -> None:
    with pytest.raises(OperationalError, match="readonly"), db.read() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    db.dispose()


def test_in_memory_database_reads_through_its_own_connection() -> None:
    database = Database("sqlite://")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    with database.read() as session:  # no second engine: it would be another database
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
    database.dispose()
