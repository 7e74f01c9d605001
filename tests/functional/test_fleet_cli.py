"""``govcloud server migrate``, ``host drain/undrain/maintenance/drains`` and ``dc
evacuate`` against the real API in-process (SQLite). On every tick of the CLI's fake
clock, agent stand-ins carry out migration orders and the drain loop runs one pass."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from controlplane.cli.errors import ExitCode
from tests.api_helper import Agent
from tests.functional.cli_helpers import CliHarness, rows
from tests.functional.fleet_helpers import migration_agent_pass


def _json(text: str) -> Any:
    return json.loads(text)


def add_host(cli: CliHarness, name: str, dc: str = "tpe-1") -> Agent:
    agent = cli.api.register_host(name, dc=dc)

    def tick() -> None:
        migration_agent_pass(agent)

    cli.on_tick.append(tick)
    return agent


def test_migrate_drain_maintenance_and_evacuate(cli: CliHarness) -> None:
    add_host(cli, "tpe-1-h01")
    cli.on_tick.append(cli.api.app.state.drains.run_once)
    for name in ("web-01", "web-02"):
        cli.run("server", "create", name, "-p", "disaster", "-f", "m1.small", "-i", "cirros")
    cli.sleep(0.5)
    add_host(cli, "tpe-1-h02")

    result = cli.run("server", "migrate", "web-01", "--wait", "-o", "json")
    assert "Migrating web-01" in result.stderr
    assert "tpe-1-h01 -> tpe-1-h02 (live)" in result.stderr
    assert _json(result.stdout)["phase"] == "done"
    shown = _json(cli.run("server", "show", "web-01", "-o", "json").stdout)
    assert (shown["state"], shown["host_name"]) == ("RUNNING", "tpe-1-h02")

    drained = cli.run("host", "drain", "tpe-1-h01", "--max-parallel", "1", "--wait", "-o", "json")
    assert "Draining tpe-1-h01: 1 server(s) to move" in drained.stderr
    assert "1/1 moved" in drained.stderr
    assert _json(drained.stdout)["state"] == "done"
    hosts = _json(cli.run("host", "list", "-o", "json").stdout)
    assert {h["name"]: h["state"] for h in hosts}["tpe-1-h01"] == "draining"
    listing = rows(cli.run("host", "drains", "tpe-1-h01").stdout)
    assert listing
    assert "done" in listing[0]
    cli.run("host", "undrain", "tpe-1-h01")

    until = (cli.api.clock() + timedelta(hours=4)).isoformat()
    maint = cli.run(
        "host", "maintenance", "tpe-1-h02", "--until", until, "--reason", "firmware", "--wait"
    )
    assert "Maintenance of tpe-1-h02" in maint.stderr
    assert "2/2 moved" in maint.stderr
    hosts = _json(cli.run("host", "list", "-o", "json").stdout)
    assert {h["name"]: h["state"] for h in hosts}["tpe-1-h02"] == "maintenance"
    windows = _json(cli.run("maintenance", "list", "-o", "json").stdout)
    assert any(w["reason"] == "firmware" for w in windows)

    cli.api.create_dc("khh-1", "Kaohsiung 1")
    add_host(cli, "khh-1-h01", dc="khh-1")
    evac = cli.run("dc", "evacuate", "tpe-1", "--to", "khh-1", "--wait", "-o", "json")
    assert "Evacuating tpe-1 to khh-1: 2 server(s)" in evac.stderr
    assert _json(evac.stdout)["migrated"] == 2
    for name in ("web-01", "web-02"):
        shown = _json(cli.run("server", "show", name, "-o", "json").stdout)
        assert (shown["datacentre"], shown["state"]) == ("khh-1", "RUNNING")


def test_migrate_errors_exit_with_the_api_reason(cli: CliHarness) -> None:
    add_host(cli, "tpe-1-h01")
    cli.run("server", "create", "db-01", "-p", "disaster", "-f", "m1.small", "-i", "cirros")
    cli.sleep(0.5)
    nowhere = cli.run("server", "migrate", "db-01", code=ExitCode.API_ERROR)
    assert "no host can take db-01" in nowhere.stderr
    missing = cli.run("server", "migrate", "db-01", "--to", "nope", code=ExitCode.NOT_FOUND)
    assert "nope" in missing.stderr
    bad = cli.run("host", "drain", "tpe-1-h01", "--max-parallel", "0", code=ExitCode.USAGE)
    assert "max-parallel" in bad.stderr
    when = cli.run("host", "maintenance", "tpe-1-h01", "--until", "soon", code=ExitCode.USAGE)
    assert "--until: not a date and time" in when.stderr
