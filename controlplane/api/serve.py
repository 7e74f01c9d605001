"""``govcloud-api``: serve the control plane with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from controlplane.api.app import create_app
from controlplane.settings import Settings
from controlplane.store import open_configured_store


def run() -> None:
    """Console entry point: ``govcloud-api [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description="Serve the govcloud control-plane API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8774)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    store = open_configured_store(settings)
    # Agents' long-polls would otherwise hold shutdown for up to max_poll_wait_s; they
    # reconnect and resume, so cut them short.
    uvicorn.run(
        create_app(settings, store), host=args.host, port=args.port, timeout_graceful_shutdown=2
    )
