"""``govcloud-api``: serve the control plane with uvicorn, in one or several processes.

``--workers N`` (or ``GOVCLOUD_API_WORKERS``) runs N uvicorn worker processes on the same
port, each with its own app, store connection pool, long-poll watcher and background
loops, exactly as N replicas behind a load balancer would (the loops are safe to run in
every replica: the store's conditional updates arbitrate). One Python process is bound to
one core by the GIL; on SQLite the workers share the database file in WAL mode. The parent
migrates the database and creates the admin before it starts the workers, so they never
race to do either.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from controlplane.api.app import create_app
from controlplane.settings import Settings
from controlplane.store import open_configured_store

#: Environment variable read by :func:`worker_app` in each worker process.
WORKERS_ENV = "GOVCLOUD_API_WORKERS"
#: Agents' long-polls would otherwise hold shutdown for up to max_poll_wait_s; they
#: reconnect and resume, so cut them short.
GRACEFUL_SHUTDOWN_S = 2


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this factory in every worker)."""
    settings = Settings()
    return create_app(settings, open_configured_store(settings))


def _prepare(settings: Settings) -> None:
    """Migrate the database and create the admin once, before any worker starts."""
    store = open_configured_store(settings)
    try:
        if settings.admin_token:
            store.users.ensure_admin(settings.admin_token)
    finally:
        store.close()


def _setting_problem(error: ErrorDetails) -> str:
    """One invalid setting as ``GOVCLOUD_NAME='value': why`` (a rule across settings:
    just why)."""
    if not error["loc"]:
        return error["msg"]
    return f"GOVCLOUD_{str(error['loc'][0]).upper()}={error['input']!r}: {error['msg']}"


def run() -> None:
    """Console entry point: ``govcloud-api [--host H] [--port P] [--workers N]``."""
    parser = argparse.ArgumentParser(description="Serve the govcloud control-plane API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8774)
    parser.add_argument(
        "--workers",
        default=os.environ.get(WORKERS_ENV) or "1",
        help=f"uvicorn worker processes (default 1, or ${WORKERS_ENV})",
    )
    args = parser.parse_args()
    given = args.workers
    try:
        args.workers = int(given)
    except ValueError:
        args.workers = 0
    if args.workers < 1:
        parser.error(
            f"--workers (or ${WORKERS_ENV}) must be an integer of at least 1, not {given!r}"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
    except ValidationError as err:  # a bad environment variable: name it, no traceback
        parser.error("; ".join(_setting_problem(e) for e in err.errors()))
    if args.workers == 1:
        store = open_configured_store(settings)
        uvicorn.run(
            create_app(settings, store),
            host=args.host,
            port=args.port,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            access_log=settings.access_log,
        )
        return
    _prepare(settings)
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=settings.access_log,
    )
