"""Helpers of the Ansible enrolment tests (``tests/e2e/test_enrol_*.py``).

- :func:`control_plane`: the real API served by uvicorn on a given address (loopback, or
  the root end of a test namespace's veth so agents inside the namespace reach it), on a
  SQLite file, with an admin token and one data centre.
- :func:`govcloud`: the real ``govcloud`` CLI in-process (Typer's CliRunner) pointed at it
  over HTTP, so ``host enrol`` runs ansible-runner exactly as an operator would.
- :func:`kill_agents_under`: the finalizer that stops every supervisor/agent whose command
  line mentions a test directory (whatever state a failed test left behind).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from typer.testing import CliRunner, Result

from controlplane.api.app import create_app
from controlplane.cli.context import CliEnv
from controlplane.cli.main import app
from controlplane.client import GovcloudClient
from controlplane.schemas.catalog import DataCentreCreate
from controlplane.settings import Settings
from controlplane.store import open_configured_store

DC = "tpe"


@dataclass(frozen=True)
class ControlPlane:
    """A served control plane and an admin client for it."""

    url: str
    token: str
    client: GovcloudClient


@contextmanager
def control_plane(workdir: Path, address: str = "127.0.0.1") -> Iterator[ControlPlane]:
    """Serve the API on ``address`` (a free port) with data centre ``tpe``; stop it on exit."""
    token = secrets.token_urlsafe(24)
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'cp.db'}",
        admin_token=token,
        max_poll_wait_s=2,
        heartbeat_interval_s=2,
        pending_retry_interval_s=0.5,
    )
    store = open_configured_store(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store), log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    url = f"http://{address}:{port}"
    client = GovcloudClient(url, token)
    try:
        client.create_datacentre(DataCentreCreate(code=DC, name="Taipei", location="Taipei"))
        yield ControlPlane(url, token, client)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        store.close()


def govcloud(cp: ControlPlane, *args: str, home: Path) -> Result:
    """Run ``govcloud ARGS`` in-process against ``cp`` (real HTTP; no saved login)."""
    environ = {
        "GOVCLOUD_URL": cp.url,
        "GOVCLOUD_TOKEN": cp.token,
        "GOVCLOUD_CONFIG": str(home / "cli.yaml"),
    }
    return CliRunner().invoke(app, list(args), obj=CliEnv(environ=environ))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_under(directory: Path) -> list[int]:
    """Pids whose command line mentions ``directory`` (supervisors and their agents)."""
    marker = str(directory)
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and int(entry.name) != os.getpid()
        and marker in _cmdline(int(entry.name))
    ]


def kill_agents_under(directory: Path, grace_s: float = 10.0) -> None:
    """SIGTERM every process mentioning ``directory``, SIGKILL what is left after a grace."""
    for pid in processes_under(directory):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while processes_under(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in processes_under(directory):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def supervisor_running(state_dir: Path) -> bool:
    """Whether the role's supervisor for the host in ``state_dir`` is alive."""
    pidfile = state_dir / "supervisor.pid"
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text().strip() or 0)
    return pid > 0 and "govcloud-agentctl supervise" in _cmdline(pid)
