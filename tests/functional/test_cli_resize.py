"""``govcloud server resize`` against the real API in-process (SQLite), with an agent
stand-in that applies each change on every tick of the CLI's fake clock."""

from __future__ import annotations

import json
from typing import Any

from controlplane.cli.errors import ExitCode
from tests.functional.cli_helpers import CliHarness, column, rows


def _json(text: str) -> Any:
    return json.loads(text)


def stopped_server(cli: CliHarness) -> str:
    cli.add_agent("tpe-1-h01")
    cli.run(
        "server", "create", "web-01", "-p", "disaster", "-f", "m1.small", "-i", "cirros", "--wait"
    )
    server: str = _json(cli.run("server", "stop", "web-01", "--wait", "-o", "json").stdout)["id"]
    return server


def test_resize_with_wait_follows_it_until_the_host_applied_it(cli: CliHarness) -> None:
    server = stopped_server(cli)
    result = cli.run("server", "resize", "web-01", "--flavor", "m1.large", "--wait", "-o", "json")
    assert "Resize to m1.large requested for web-01" in result.stderr
    assert "4 vCPU, 8192 MiB RAM, 80 GiB disk" in result.stderr
    assert "applied on tpe-1/tpe-1-h01: m1.large" in result.stderr
    shown = _json(result.stdout)
    assert (shown["flavor"], shown["state"]) == ("m1.large", "STOPPED")
    assert shown["resources"] == {"vcpus": 4, "ram_mib": 8192, "disk_gib": 80}

    table = cli.run("server", "actions", server).stdout
    assert column(rows(table), 0) == ["create", "stop", "resize"]
    actions = _json(cli.run("server", "actions", server, "-o", "json").stdout)
    assert (actions[-1]["result"], actions[-1]["message"]) == ("success", "m1.small -> m1.large")

    cli.run("server", "resize", server, "-f", "m1.tiny")  # without --wait: returns at once
    assert _json(cli.run("server", "show", server, "-o", "json").stdout)["flavor"] == "m1.tiny"


def test_resize_errors_exit_with_the_api_reason(cli: CliHarness) -> None:
    cli.add_agent("tpe-1-h01")
    cli.run(
        "server", "create", "web-01", "-p", "disaster", "-f", "m1.small", "-i", "cirros", "--wait"
    )

    running = cli.run("server", "resize", "web-01", "-f", "m1.large", code=ExitCode.API_ERROR)
    assert "resize is accepted in: STOPPED" in running.stderr
    assert "govcloud server show" in running.stderr  # the hint

    cli.run("server", "stop", "web-01", "--wait")
    same = cli.run("server", "resize", "web-01", "-f", "m1.small", code=ExitCode.USAGE)
    assert "already has flavor m1.small" in same.stderr
    missing = cli.run("server", "resize", "web-01", "-f", "m9.none", code=ExitCode.NOT_FOUND)
    assert "flavor 'm9.none' not found" in missing.stderr
    invalid = cli.run("server", "resize", "web-01", "-f", "Not A Name!", code=ExitCode.USAGE)
    assert "invalid input: flavor" in invalid.stderr

    cli.api.patch("/v1/quotas/disaster", json={"limits": {"ram_mib": 2048}}, expect=200)
    over = cli.run("server", "resize", "web-01", "-f", "m1.large", code=ExitCode.API_ERROR)
    assert "disaster: ram_mib 1024 used + 7168 requested > limit 2048" in over.stderr
    assert _json(cli.run("server", "show", "web-01", "-o", "json").stdout)["flavor"] == "m1.small"


def test_resize_wait_times_out_when_no_agent_applies_it(cli: CliHarness) -> None:
    stopped_server(cli)
    cli.on_tick.clear()  # the host's agent is gone
    result = cli.run(
        "server",
        "resize",
        "web-01",
        "-f",
        "m1.medium",
        "--wait",
        "--timeout",
        "3",
        code=ExitCode.TIMEOUT,
    )
    assert "still STOPPED after 3 s; waited for the host to apply the new size" in result.stderr
