"""Real server processes for the HTTP benchmarks: a ``govcloud-api`` and its admin client.

Owns :class:`Service` (a child process in its own session with its log file, waited for
until it answers and always stopped: SIGTERM, then SIGKILL) and :func:`govcloud_api`, which
serves an already seeded database with the real ``govcloud-api`` entry point (uvicorn,
one process or ``workers`` worker processes, this source tree's code) on a free port of
127.0.0.1, with a platform-admin token for the benchmark.
The OpenStack Placement service is started by :mod:`benchmarks.placement_ref` on the same
:class:`Service`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

#: The benchmark's platform-admin token (the API creates the admin on first start).
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
START_TIMEOUT_S = 60.0


class ServiceFailed(RuntimeError):
    """A benchmark service did not start or died; the message ends with its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """One child process serving HTTP at ``url``."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        """The end of its log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        """Raise :class:`ServiceFailed` if the process has exited."""
        if self.proc.poll() is not None:
            raise ServiceFailed(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"end of {self.log}:\n{self.tail()}"
            )

    def wait_ready(self, ready: Callable[[httpx.Client], bool], timeout_s: float) -> None:
        """Poll ``ready`` until it is true (raise if the process dies or time runs out)."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while True:
                self.check()
                with contextlib.suppress(httpx.HTTPError):
                    if ready(client):
                        return
                if time.monotonic() > deadline:
                    raise ServiceFailed(f"{self.name} did not answer in {timeout_s:.0f} s")
                time.sleep(0.1)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to its whole process group, SIGKILL after ``grace_s``."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()


@contextmanager
def spawn(
    name: str, argv: Sequence[str], *, url: str, log: Path, env: Mapping[str, str]
) -> Iterator[Service]:
    """Start ``argv`` in its own session, output to ``log``; always stopped on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=REPO,
            start_new_session=True,
        )
    service = Service(name, url, proc, log)
    try:
        yield service
    finally:
        service.stop()


#: The source tree the benchmarks belong to: child processes run this tree's code (not
#: whatever ``govcloud`` happens to be installed).
REPO = Path(__file__).resolve().parents[1]


def python_command(module: str) -> list[str]:
    """This interpreter running ``module``'s ``run()`` (a console script's entry point)."""
    return [sys.executable, "-c", f"import sys; from {module} import run; sys.exit(run())"]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without GOVCLOUD_* settings, with this tree first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCLOUD_")}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env | {"PYTHONPATH": path} | dict(extra or {})


def _govcloud_ready(client: httpx.Client) -> bool:
    response = client.get("/v1/flavors", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return response.status_code == 200


@contextmanager
def govcloud_api(
    database_url: str,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
) -> Iterator[Service]:
    """A real ``govcloud-api`` over the (migrated, seeded) ``database_url``; ``workers``
    uvicorn worker processes (children of the one :class:`Service` process)."""
    port = free_port()
    settings = {
        "GOVCLOUD_DATABASE_URL": database_url,
        "GOVCLOUD_ADMIN_TOKEN": ADMIN_TOKEN,
    } | dict(env or {})
    argv = [*python_command("controlplane.api.serve"), "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    log = workdir / f"govcloud-api-{port}.log"
    with spawn(
        "govcloud-api", argv, url=f"http://127.0.0.1:{port}", log=log, env=child_env(settings)
    ) as service:
        service.wait_ready(_govcloud_ready, START_TIMEOUT_S)
        yield service
