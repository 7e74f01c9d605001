"""A throwaway PostgreSQL cluster for tests and benchmarks.

``PgCluster`` runs ``initdb`` into a temporary directory and starts ``postgres`` on a free
TCP port of 127.0.0.1 with trust authentication and ``fsync=off``. PostgreSQL refuses to
run as root, so under root the server runs as the ``postgres`` system user (created by
the ``postgresql`` package) or, failing that, ``nobody``, through ``runuser``.

Databases are cheap: ``create_database(name, template=...)`` clones a migrated template
in a few tens of milliseconds, so each test can have its own.

Usage::

    with PgCluster.start() as cluster:
        url = cluster.create_database("bench")
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

#: Overrides the directory that holds initdb, pg_ctl and postgres.
BIN_ENV = "GOVCLOUD_PG_BIN"
SEARCH_GLOB = "/usr/lib/postgresql/*/bin"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` (or ``$GOVCLOUD_PG_BIN``, or ``PATH``)."""
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override)
        if (path / "initdb").exists():
            return path
        raise PgUnavailable(f"{BIN_ENV}={override} has no initdb")
    candidates = [p for p in Path("/").glob(SEARCH_GLOB.lstrip("/")) if (p / "initdb").exists()]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

    if candidates:
        return max(candidates, key=version)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PgUnavailable(
        f"PostgreSQL server binaries not found under {SEARCH_GLOB} or on PATH; "
        "install them with `scripts/bootstrap.sh --e2e` (apt package `postgresql`)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as() -> str | None:
    """The unprivileged user to run PostgreSQL as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PgUnavailable("running as root and neither 'postgres' nor 'nobody' exists")


@dataclass
class PgCluster:
    """A running throwaway cluster; ``stop()`` kills it and removes its files."""

    bin_dir: Path
    base_dir: Path
    port: int
    user: str | None
    superuser: str = "govcloud"

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA."""
        return self.base_dir / "data"

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> PgCluster:
        """initdb + start; raises PgUnavailable without binaries, RuntimeError on failure."""
        bin_dir = bin_dir or find_bin_dir()
        user = _run_as()
        # The server's user must reach its directory: under root, use the world-traversable
        # /tmp rather than a TMPDIR that may sit in root's home.
        base = Path(tempfile.mkdtemp(prefix="govcloud-pg-", dir="/tmp" if user else None))
        cluster = cls(bin_dir=bin_dir, base_dir=base, port=_free_port(), user=user)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        try:
            cluster._pg(
                "initdb",
                "-D",
                str(cluster.data_dir),
                "-U",
                cluster.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {cluster.port} "
                f"-c unix_socket_directories='{base}' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300 -c shared_buffers=32MB"
            )
            cluster._pg(
                "pg_ctl",
                "-D",
                str(cluster.data_dir),
                "-l",
                str(base / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            )
            cluster._wait_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=self.base_dir, timeout=120
        )
        if result.returncode != 0:
            log = self.base_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def dsn(self, dbname: str) -> str:
        """A libpq connection string for ``dbname``."""
        return f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``dbname``."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (optionally as a copy of ``template``); returns its URL.

        A template must have no open connections while it is copied.
        """
        for ident in (name, template):
            if ident is not None and not _IDENT.match(ident):
                raise ValueError(f"not a safe database name: {ident!r}")
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            if template is not None:
                query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                if conn.info.server_version >= 150000:
                    # a file copy is ~10x faster than WAL-logging a small template
                    query += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still connected."""
        if not _IDENT.match(name):
            raise ValueError(f"not a safe database name: {name!r}")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete the cluster's files."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextmanager
def throwaway_cluster() -> Iterator[PgCluster]:
    """``with throwaway_cluster() as cluster:`` - started, and always stopped."""
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
