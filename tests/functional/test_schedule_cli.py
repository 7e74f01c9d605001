"""The scheduler through the CLI: server groups, --count, why, show, schedule --dry-run,
and the data centre policy option (SQLite, in-process)."""

from __future__ import annotations

import json

from tests.functional.cli_helpers import CliHarness


def test_groups_count_why_and_dry_run(cli: CliHarness) -> None:
    for i in range(2):
        cli.api.register_host(f"tpe-h0{i}", traits=["ssd"] if i else [])
    cli.run("dc", "update", "tpe-1", "--policy", "pack")
    dcs = json.loads(cli.run("dc", "list", "-o", "json").stdout)
    assert dcs[0]["placement_policy"] == "pack"

    made = cli.run(
        "server", "group", "create", "web", "-p", "disaster", "--policy", "anti-affinity"
    )
    assert "Created server group web" in made.stderr
    listed = json.loads(cli.run("server", "group", "list", "-o", "json").stdout)
    assert [g["name"] for g in listed] == ["web"]

    created = cli.run(
        "server", "create", "web", "-p", "disaster", "-f", "m1.small", "-i", "cirros",
        "--count", "3", "--group", "web", "--partial", "-o", "json",
    )  # fmt: skip
    servers = json.loads(created.stdout)
    assert [s["state"] for s in servers] == ["SCHEDULED", "SCHEDULED", "PENDING"]
    assert "2 placed, 1 pending" in created.stderr

    why = cli.run("server", "why", servers[2]["id"])
    assert "rejected by check: server_group 2" in why.stderr
    assert "anti-affinity" in why.stderr
    show = cli.run("server", "show", servers[0]["id"])
    assert "decision: partial (2 of 3 placed, policy spread" in show.stderr  # no --dc: default
    assert json.loads(cli.run("server", "why", "web-3", "-o", "json").stdout)["explanation"]

    dry = cli.run(
        "schedule", "--dry-run", "--flavor", "m1.large", "--count", "2", "--trait", "ssd",
        "--policy", "spread",
    )  # fmt: skip
    assert "tpe-h01" in dry.stdout
    assert "rejected by check: traits 1" in dry.stderr
    nowhere = json.loads(
        cli.run("schedule", "--dry-run", "-f", "m1.large", "-n", "50", "-o", "json").stdout
    )
    assert nowhere["complete"] is False
    assert nowhere["explanation"]["capacity_short"]
    cli.run("schedule", "-f", "m1.small", code=2)  # only dry runs
    shown = json.loads(cli.run("server", "group", "show", "web", "-o", "json").stdout)
    assert len(shown["members"]) == 3
    cli.run("server", "group", "delete", "web", code=1)  # still has members
