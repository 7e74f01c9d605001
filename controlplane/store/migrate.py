"""Schema migrations with Alembic, run programmatically (no alembic.ini needed).

Several control-plane replicas may start at once: on PostgreSQL an advisory lock makes
them migrate one after another; the later ones find the schema at head and do nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from controlplane.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6F76636C6F7564  # "govcloud"-ish constant for pg_advisory_lock


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at our migrations and ``db``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    if db.is_postgres:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            try:
                command.upgrade(alembic_config(db), revision)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                conn.commit()
    else:
        command.upgrade(alembic_config(db), revision)
