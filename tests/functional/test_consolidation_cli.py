"""``govcloud dc consolidate`` / ``dc consolidations`` and ``host update --idle-watts
--peak-watts`` against the real API in-process (SQLite). On every tick of the CLI's fake
clock the consolidation loop runs one pass and agent stand-ins carry out migrations."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from controlplane.cli.errors import ExitCode
from tests.functional.cli_helpers import CliHarness, rows
from tests.functional.fleet_helpers import migration_agent_pass


def _json(text: str) -> Any:
    return json.loads(text)


def fleet(cli: CliHarness, hosts: int = 4) -> None:
    """``hosts`` hosts with one RUNNING server each; every tick runs the agents and the
    consolidation loop."""
    agents = [cli.api.register_host(f"tpe-1-h{i:02d}") for i in range(1, hosts + 1)]
    for n in range(hosts):
        cli.api.create_instance(f"app-{n:02d}")
    for agent in agents:
        agent.converge()

    def tick() -> None:
        cli.api.app.state.consolidation.run_once()
        for agent in agents:
            migration_agent_pass(agent)

    cli.on_tick.append(tick)


def test_dry_run_prints_moves_hosts_and_power(cli: CliHarness) -> None:
    fleet(cli)
    updated = cli.run(
        "host", "update", "tpe-1-h01", "--idle-watts", "110", "--peak-watts", "390", "-o", "json"
    )
    assert (_json(updated.stdout)["idle_watts"], _json(updated.stdout)["peak_watts"]) == (110, 390)

    dry = cli.run("dc", "consolidate", "tpe-1", "--dry-run")
    assert "Moves in tpe-1" in dry.stdout
    assert len(rows(dry.stdout)) == 3 + 4  # three moves, four hosts
    assert "Hosts freed: 2 of 4 active" in dry.stdout
    assert "kWh per month" in dry.stdout
    assert "default power model (idle 150 W, peak 450 W) for 3 host(s)" in dry.stdout
    assert "kept on as a spare (reserve 1)" in dry.stdout
    as_json = _json(cli.run("dc", "consolidate", "tpe-1", "--dry-run", "-o", "json").stdout)
    assert len(as_json["freed"]) == 2
    yaml_out = cli.run("dc", "consolidate", "tpe-1", "--dry-run", "--reserve", "0", "-o", "yaml")
    assert "freed:" in yaml_out.stdout

    bad = cli.run("dc", "consolidate", "tpe-1", "--dry-run", "--max-fill", "2", code=ExitCode.USAGE)
    assert "max_fill" in bad.stderr
    assert "got 2.0" in bad.stderr
    watts = cli.run(
        "host", "update", "tpe-1-h02", "--idle-watts", "300", "--peak-watts", "100",
        code=ExitCode.USAGE,
    )  # fmt: skip
    assert "peak_watts" in watts.stderr
    both = cli.run("dc", "consolidate", "tpe-1", "--dry-run", "--pause", code=ExitCode.USAGE)
    assert "cannot be combined" in both.stderr


def test_execute_follows_progress_and_powers_down(cli: CliHarness) -> None:
    fleet(cli)
    ran = cli.run("dc", "consolidate", "tpe-1", "--max-parallel", "1", "-o", "json")
    assert "Consolidating tpe-1: 3 move(s), at most 1 at a time" in ran.stderr
    assert ": done" in ran.stderr  # each step as it ends
    assert "2/2 host(s) powered down" in ran.stderr
    final = _json(ran.stdout)
    assert final["state"] == "done"
    hosts = {h["name"]: h for h in _json(cli.run("host", "list", "-o", "json").stdout)}
    down = [n for n, h in hosts.items() if h["state"] == "maintenance"]
    assert sorted(down) == sorted(final["plan"]["freed"])
    assert all(hosts[n]["state_note"].startswith("powered down for consolidation") for n in down)
    shown = cli.run("dc", "consolidate", "tpe-1", "--show")
    assert "tpe-1: done; 3/3 moved" in shown.stdout
    listing = rows(cli.run("dc", "consolidations").stdout)
    assert len(listing) == 1
    assert "done" in listing[0]
    again = cli.run("dc", "consolidate", "tpe-1", "--pause", code=ExitCode.API_ERROR)
    assert "no running or paused consolidation" in again.stderr


def test_ctrl_c_leaves_the_plan_running_and_resume_finishes_it(cli: CliHarness) -> None:
    fleet(cli)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    env = dataclasses.replace(cli.env(), sleep=interrupt)
    stopped = cli.run("dc", "consolidate", "tpe-1", "--max-parallel", "1", env=env, code=130)
    assert "carries on in the control plane" in stopped.stderr
    assert "govcloud dc consolidate tpe-1 --pause" in stopped.stderr
    paused = cli.run("dc", "consolidate", "tpe-1", "--pause", "-o", "json")
    assert _json(paused.stdout)["state"] == "paused"
    resumed = cli.run("dc", "consolidate", "tpe-1", "--resume", "-o", "json")
    assert "is running" in resumed.stderr
    assert _json(resumed.stdout)["state"] == "done"
    assert _json(resumed.stdout)["powered_down"] == 2
