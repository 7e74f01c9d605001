"""Shared fixtures.

- ``pg_cluster`` (session): a throwaway PostgreSQL cluster (see ``tests/pg.py``) with
  template databases migrated to head. Skipped with a reason when PostgreSQL is not
  installed, unless ``GOVCLOUD_REQUIRE_POSTGRES=1`` (then it fails).
- ``pg_url`` / ``pg_seeded_url``: a fresh database cloned from the empty / seeded
  template, dropped afterwards.
- ``sqlite_url`` / ``sqlite_seeded_url``: a fresh SQLite file copied from a template.
- ``backend``: parametrised over ``sqlite`` and ``postgres`` (the latter marked
  ``postgres``); ``db_url`` and ``seeded_url`` follow it, so any test using them runs on
  both backends.
- ``api``: an :class:`tests.api_helper.Api` (admin token, fake clock, ``run_loops=False``)
  over ``seeded_url``: the standard catalogue and organisation tree of ``Api.seed``.
  ``bare_api``: the same over the empty ``db_url``.
- ``api_factory``: builds more replicas (``api_factory(url, **settings)``), all closed at
  the end of the test.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from controlplane.store import open_store
from tests.api_helper import START, Api, FakeClock
from tests.pg import PgCluster, PgUnavailable

# Machines here are noisy: no per-example deadlines (tests assert behaviour, not time).
# In CI the examples are derandomised, so a run is reproducible; local runs keep exploring.
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TEMPLATE_DB = "govcloud_template"
SEEDED_DB = "govcloud_seeded"
_db_counter = itertools.count()


def _seed(url: str) -> None:
    """Run :meth:`Api.seed` against ``url`` (a day before the tests' clocks start)."""
    seeder = Api(url, clock=FakeClock(START - timedelta(days=1)))
    try:
        seeder.seed()
    finally:
        seeder.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running throwaway cluster with two template databases at head: ``govcloud_template``
    (empty) and ``govcloud_seeded`` (after :meth:`Api.seed`)."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as exc:
        if os.environ.get("GOVCLOUD_REQUIRE_POSTGRES") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        store = open_store(cluster.create_database(TEMPLATE_DB))
        store.close()  # no open connections, or the template cannot be copied
        _seed(cluster.create_database(SEEDED_DB, template=TEMPLATE_DB))
        yield cluster
    finally:
        cluster.stop()


def _pg_copy(cluster: PgCluster, template: str) -> Iterator[str]:
    name = f"t{os.getpid()}_{next(_db_counter)}"
    yield cluster.create_database(name, template=template)
    cluster.drop_database(name)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, migrated, empty PostgreSQL database for this test."""
    yield from _pg_copy(pg_cluster, TEMPLATE_DB)


@pytest.fixture
def pg_seeded_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh PostgreSQL database holding the standard seed."""
    yield from _pg_copy(pg_cluster, SEEDED_DB)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head, to copy from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    return path


@pytest.fixture(scope="session")
def sqlite_seeded_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database holding the standard seed, to copy from."""
    path = tmp_path_factory.mktemp("sqlite-seeded") / "seeded.db"
    shutil.copyfile(sqlite_template, path)
    _seed(f"sqlite:///{path}")
    return path


def _sqlite_copy(template: Path, directory: Path) -> str:
    path = directory / "govcloud.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated, empty SQLite database file for this test."""
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture
def sqlite_seeded_url(sqlite_seeded_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database file holding the standard seed."""
    return _sqlite_copy(sqlite_seeded_template, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test run: ``sqlite`` or ``postgres``."""
    name: str = request.param
    return name


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend in turn."""
    url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    return url


@pytest.fixture
def seeded_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh database holding the standard seed, on each backend in turn."""
    name = "sqlite_seeded_url" if backend == "sqlite" else "pg_seeded_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def api_factory() -> Iterator[Callable[..., Api]]:
    """``api_factory(url, **kwargs)`` -> a new replica over ``url``; all closed afterwards."""
    made: list[Api] = []

    def make(url: str, **kwargs: Any) -> Api:
        replica = Api(url, **kwargs)
        made.append(replica)
        return replica

    yield make
    for replica in reversed(made):
        replica.close()


@pytest.fixture
def bare_api(db_url: str, api_factory: Callable[..., Api]) -> Api:
    """A control plane over an empty database (only the root org and the admin)."""
    return api_factory(db_url, migrate=False)  # copied from a template at head


@pytest.fixture
def api(seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    """A control plane over a database holding the standard seed (:meth:`Api.seed`)."""
    return api_factory(seeded_url, migrate=False)  # copied from a template at head
