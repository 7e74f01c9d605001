"""Running the ``govcloud`` CLI in-process against the real API, for functional tests.

:class:`CliHarness` invokes the Typer app with Typer's ``CliRunner`` and injects a
:class:`~controlplane.cli.context.CliEnv` whose client factory talks to an
:class:`tests.api_helper.Api` (the real app and store on SQLite) through its
``TestClient``; nothing global is patched. ``--wait`` loops run on a fake clock, and each
time the CLI would sleep the harness runs its ``on_tick`` hooks, e.g. a
:class:`SteppingAgent` that builds instances the way a real agent reports them
(``building`` first, then ``running``, with the assigned sizes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from controlplane.cli.context import CliEnv
from controlplane.cli.main import app
from controlplane.client import GovcloudClient
from tests.api_helper import ADMIN_TOKEN, Agent, Api

BASE_URL = "http://testserver"


@dataclass
class SteppingAgent:
    """An agent stand-in over the real ``/v1/agent`` endpoints: a new instance is reported
    ``building`` on one pass and ``running`` on the next; stop, start, reboot and delete
    are carried out in one pass."""

    agent: Agent
    seen: set[str] = field(default_factory=set)
    #: instance name -> error message to report instead of building it.
    failing: dict[str, str] = field(default_factory=dict)

    def step(self) -> None:
        """One reconcile pass."""
        observed = {"running": "running", "stopped": "stopped", "deleted": "absent"}
        statuses: list[dict[str, Any]] = []
        for item in self.agent.assignments()["assignments"]:
            iid = item["instance_id"]
            if item["name"] in self.failing:
                message = self.failing[item["name"]]
                statuses.append({"instance_id": iid, "state": "error", "message": message})
            elif item["create"] and item["desired"] == "running" and iid not in self.seen:
                statuses.append({"instance_id": iid, "state": "building"})
            else:
                statuses.append(
                    {
                        "instance_id": iid,
                        "state": observed[item["desired"]],
                        "reboot_seq": item["reboot_seq"],
                        "vcpus": item["vcpus"],
                        "ram_mib": item["ram_mib"],
                    }
                )
            self.seen.add(iid)
        if statuses:
            self.agent.report(*statuses)


class CliHarness:
    """``run("server", "list")`` as a given user, against ``api``."""

    def __init__(self, api: Api, home: Path) -> None:
        self.api = api
        self.config_path = home / "govcloud" / "config.yaml"
        self.runner = CliRunner()
        self.now = 0.0
        self.on_tick: list[Callable[[], None]] = []

    # -- the injected environment ---------------------------------------------------------

    def client_factory(self, url: str, token: str | None) -> GovcloudClient:
        """Clients that reach the in-process app (whatever the configured URL says)."""
        return GovcloudClient(url, token, http=self.api.client)

    def env(
        self,
        *,
        token: str | None = ADMIN_TOKEN,
        url: str | None = BASE_URL,
        factory: Callable[[str, str | None], GovcloudClient] | None = None,
    ) -> CliEnv:
        """A CliEnv with ``GOVCLOUD_URL``/``GOVCLOUD_TOKEN`` set (None: unset) and a
        private config file."""
        environ = {"GOVCLOUD_CONFIG": str(self.config_path)}
        if url is not None:
            environ["GOVCLOUD_URL"] = url
        if token is not None:
            environ["GOVCLOUD_TOKEN"] = token
        return CliEnv(
            client_factory=factory or self.client_factory,
            environ=environ,
            clock=lambda: self.now,
            sleep=self.sleep,
            poll_interval_s=1.0,
        )

    def sleep(self, seconds: float) -> None:
        """Fake time passes, and the world (agents, pending retries) moves on."""
        self.now += seconds
        for hook in list(self.on_tick):  # hooks added now start on the next tick
            hook()

    # -- running commands -----------------------------------------------------------------

    def run(
        self,
        *args: str,
        code: int = 0,
        token: str | None = ADMIN_TOKEN,
        env: CliEnv | None = None,
        stdin: str | None = None,
    ) -> Result:
        """Invoke ``govcloud *args``; assert the exit code and that no traceback leaked."""
        result = self.runner.invoke(app, list(args), obj=env or self.env(token=token), input=stdin)
        detail = (
            f"govcloud {' '.join(args)} exited {result.exit_code}, expected {code}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n"
            f"--- exception\n{result.exception!r}"
        )
        assert result.exit_code == code, detail
        assert "Traceback" not in result.output, detail
        if code != 0:
            assert result.exception is None or isinstance(result.exception, SystemExit), detail
        return result

    def add_agent(self, name: str = "tpe-1-h01", **kwargs: Any) -> SteppingAgent:
        """Register a host whose stand-in agent takes a step on every tick."""
        agent = SteppingAgent(self.api.register_host(name, **kwargs))
        self.on_tick.append(agent.step)
        return agent


def rows(table_text: str) -> list[str]:
    """The body lines of a rich table (for asserting on table output)."""
    return [line for line in table_text.splitlines() if line.startswith("│")]


def column(lines: Sequence[str], index: int) -> list[str]:
    """One column's cells from :func:`rows` output."""
    return [line.strip("│").split("│")[index].strip() for line in lines]
