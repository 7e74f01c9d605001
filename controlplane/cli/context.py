"""The CLI's seam to the outside world: how a command gets its API client.

Owns :class:`CliEnv`, the object Typer carries as ``ctx.obj``: the client factory, the
environment mapping, and the clock/sleep used by ``--wait``. ``govcloud`` builds the
default one (real httpx, ``os.environ``, real time); tests pass their own with
``CliRunner().invoke(app, args, obj=CliEnv(client_factory=...))`` to point the CLI at an
in-process app, with no global state to patch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import typer

from controlplane.cli.config import URL_ENV, resolve
from controlplane.cli.errors import CliProblem
from controlplane.client import GovcloudClient

#: Builds a client for ``(url, token)``.
ClientFactory = Callable[[str, str | None], GovcloudClient]


def http_client(url: str, token: str | None) -> GovcloudClient:
    """The production factory: a real httpx connection to ``url``."""
    return GovcloudClient(url, token)


@dataclass(frozen=True)
class CliEnv:
    """Everything a command takes from outside the command line."""

    client_factory: ClientFactory = http_client
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: Seconds between polls while waiting for an instance.
    poll_interval_s: float = 0.5


def cli_env(ctx: typer.Context) -> CliEnv:
    """The ``CliEnv`` of this invocation (the default one unless a caller injected one)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliEnv):
        root.obj = CliEnv()
    env: CliEnv = root.obj
    return env


def api(ctx: typer.Context) -> GovcloudClient:
    """A client for the configured control plane, closed when the command ends."""
    env = cli_env(ctx)
    conn = resolve(env.environ)
    if not conn.url:
        raise CliProblem(
            "no control plane URL is configured",
            hint=f"run `govcloud login --url URL --token TOKEN`, or set {URL_ENV}",
        )
    client = env.client_factory(conn.url, conn.token)
    ctx.call_on_close(client.close)
    return client
