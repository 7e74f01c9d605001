"""``govcloud lab run|runs|run-show|size|promote`` through Typer's CliRunner against the
real API (SQLite): the run is followed with streamed progress while a stepping agent and
the run loop move the world on at each (fake) sleep; sizing from the measured run gives a
known answer, including N+1; promotion moves the servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from controlplane.api.routes.lab import policy_of
from controlplane.reconciler.lab import LabLoop
from tests.api_helper import Api
from tests.functional.cli_helpers import CliHarness, SteppingAgent

SCENARIO = """\
name: dict-peak
duration_s: 30
sample_interval_s: 10
groups:
  - name: web
    flavor: m1.medium
    image: cirros
    count: 2
    load:
      cpu: {shape: constant, high: 0.5}
      ram: {shape: constant, high: 0.5}
"""
# One host holds exactly one m1.medium (4096 MiB of 7680 usable MiB): 2 VMs x growth 1.5
# = 3 VMs -> 3 hosts, plus 1 for n+1.
HOSTS = """\
currency: TWD
models:
  - name: tiny-2c-8g
    cores: 2
    threads_per_core: 1
    ram_gib: 8
    disk_gib: 100
    idle_watts: 50
    peak_watts: 150
    price: 100000
    rack_units: 1
"""


@pytest.fixture
def cli(sqlite_seeded_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    return CliHarness(api_factory(sqlite_seeded_url, migrate=False), tmp_path)


def test_run_streams_progress_then_size_and_promote(cli: CliHarness, tmp_path: Path) -> None:
    api = cli.api
    api.create_org("moe", "gov")
    api.create_org("naer", "moe")
    api.create_org("dict-prod", "naer")
    cli.run("lab", "vendor", "create", "cht", "--name", "Chunghwa Telecom")
    operator = api.create_user("lab-op", "lab-operator", "openlab")
    vendor = api.create_user("cht-alice", "member", "cht")
    moe_admin = api.create_user("moe-admin", "ministry-admin", "moe")
    cli.run(
        "lab", "create", "--vendor", "cht", "--for", "moe", "--name", "dictionary-poc",
        "--template", "poc-small", token=vendor,
    )  # fmt: skip
    cli.run("lab", "approve", "cht-dictionary-poc", token=operator)
    loop = LabLoop(api.store, policy_of(api.settings), 60, clock=api.clock)
    loop.run_once()

    agent = SteppingAgent(api.register_host("lab-h01", vcpus=64, ram_mib=262144))
    host = agent.agent

    def world() -> None:
        agent.step()
        api.clock.advance(timedelta(seconds=5))
        loads = api.client.get(f"/v1/lab/hosts/{host.host_id}/loads", headers=host.headers)
        samples = [
            {"instance_id": x["instance_id"], "cpu": 0.5, "ram": 0.5, "disk": 0.1}
            for x in loads.json()["loads"]
        ]
        if samples:
            api.client.post(
                f"/v1/lab/hosts/{host.host_id}/usage",
                json={"samples": samples},
                headers=host.headers,
            ).raise_for_status()
        loop.advance_runs()

    cli.on_tick.append(world)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    done = cli.run("lab", "run", "cht-dictionary-poc", str(scenario), token=vendor)
    assert "[provisioning] 0/2 VM(s) running" in done.stderr
    assert "[loading] 2/2 VM(s) running" in done.stderr
    assert "[completed]" in done.stderr
    assert "web" in done.stdout
    assert "50%/50%/50%" in done.stdout

    runs = json.loads(cli.run("lab", "runs", "cht-dictionary-poc", "-o", "json").stdout)
    assert [(r["name"], r["state"], r["vms"]) for r in runs] == [("dict-peak", "completed", 2)]
    series = cli.run("lab", "run-show", runs[0]["id"], "--series", "-o", "json").stdout
    assert {p["cpu"] for p in json.loads(series)} == {0.5}
    shown = json.loads(cli.run("lab", "run-show", runs[0]["id"], "-o", "json").stdout)
    assert (shown["state"], [g["group"] for g in shown["groups"]]) == ("completed", ["web"])
    assert "Per group" in cli.run("lab", "run-show", runs[0]["id"]).stdout

    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(HOSTS, encoding="utf-8")
    args = ["lab", "size", "cht-dictionary-poc", "--growth", "1.5", "--host-models", str(hosts)]
    plain = json.loads(cli.run(*args, "-o", "json", token=moe_admin).stdout)
    spare = json.loads(cli.run(*args, "--redundancy", "n+1", "-o", "json").stdout)
    assert plain["demand"]["vms"] == 3
    assert [m["hosts"] for m in plain["models"]] == [3]
    assert [m["hosts"] for m in spare["models"]] == [4]
    assert "tiny-2c-8g" in cli.run(*args, "-o", "markdown").stdout
    bad_option = cli.run(*args, "--headroom", "1.5", code=2)
    assert "invalid option" in bad_option.stderr
    assert "--headroom < 1" in bad_option.stderr

    # a malformed scenario file: file, line and field in the message
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.replace("count: 2", "count: 0"), encoding="utf-8")
    failed = cli.run("lab", "run", "cht-dictionary-poc", str(bad), code=2, token=vendor)
    assert "bad.yaml" in failed.stderr
    assert "count" in failed.stderr

    # promote two servers into the ministry's production project
    for name in ("web-1", "web-2"):
        api.create_instance(name, project="cht-dictionary-poc", flavor="m1.small", token=vendor)
    agent.step()
    agent.step()
    moved = cli.run("lab", "promote", "cht-dictionary-poc", "--to", "dict-prod", token=moe_admin)
    assert "2 server(s) of cht-dictionary-poc now belong to project dict-prod" in moved.stderr
