"""SQLite durability level by URL (``controlplane/store/db.py``): NORMAL by default, FULL
on request, anything else refused with the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from controlplane.domain.errors import InvalidRequest
from controlplane.store.db import make_engine


def _synchronous(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("PRAGMA synchronous")).scalar_one())
    finally:
        engine.dispose()


def test_normal_by_default_and_full_on_request(tmp_path: Path) -> None:
    assert _synchronous(f"sqlite:///{tmp_path}/a.db") == 1  # NORMAL
    assert _synchronous(f"sqlite:///{tmp_path}/b.db?synchronous=full") == 2  # FULL


def test_unknown_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as refused:
        make_engine(f"sqlite:///{tmp_path}/c.db?synchronous=sometimes")
    assert refused.value.details["field"] == "database_url"
    assert "sometimes" in str(refused.value)
