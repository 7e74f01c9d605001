"""A real control-plane API served by uvicorn on a loopback port, in a background thread,
plus what the e2e tests around it share: an admin client over a fresh SQLite control plane
and a polling wait."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from controlplane.api.app import create_app
from controlplane.client import GovcloudClient
from controlplane.settings import Settings
from controlplane.store import open_configured_store


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Serve the API for ``settings`` and yield its base URL; stop it on exit."""
    store = open_configured_store(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, store), log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        store.close()


@contextmanager
def served_client(workdir: Path, **settings: Any) -> Iterator[tuple[GovcloudClient, str]]:
    """A control plane on SQLite under ``workdir`` with ``settings``, served; yields an
    admin client and the base URL."""
    token = secrets.token_urlsafe(24)
    config = Settings(database_url=f"sqlite:///{workdir / 'cp.db'}", admin_token=token, **settings)
    with serve(config) as url:
        client = GovcloudClient(url, token)
        try:
            yield client, url
        finally:
            client.close()


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` every 0.2 s until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(0.2)
