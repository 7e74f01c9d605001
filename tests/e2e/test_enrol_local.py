"""Enrolment through the real playbooks and ansible-runner, against localhost.

``govcloud host enrol --simulated`` runs ``playbooks/enrol.yml`` with
``ansible_connection=local``: the agent (the real ``govcloud-agent``, libvirt test driver)
is started under the role's supervisor (no systemd here), registers with its one-time
token and is ACTIVE in a real control plane served over HTTP. A second run changes
nothing; ``host decommission`` stops the agent, removes its state and disables the host.
A run whose agent cannot register fails naming the host, the task and the agent's log,
and leaves no host row, no running agent and no token on the host.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.enrolkit import (
    DC,
    ControlPlane,
    govcloud,
    processes_under,
    supervisor_running,
)

pytestmark = pytest.mark.e2e


def write_inventory(tmp_path: Path, *hosts: str) -> Path:
    """An INI inventory of simulated hosts on this machine (fast agent timings)."""
    inventory = tmp_path / "inventory.ini"
    lines = ["[sim]", *hosts, "", "[sim:vars]", "ansible_connection=local"]
    lines += [
        f"ansible_python_interpreter={sys.executable}",
        f"govcloud_sim_root={tmp_path / 'hosts'}",
        "govcloud_poll_wait_s=1",
        "govcloud_heartbeat_interval_s=2",
    ]
    inventory.write_text("\n".join(lines) + "\n")
    return inventory


def summary(output: str) -> list[dict[str, Any]]:
    """The JSON summary printed on stdout (progress goes to stderr)."""
    start = output.index("[\n")
    rows: list[dict[str, Any]] = json.loads(output[start:])
    return rows


def test_simulated_enrol_is_idempotent_and_decommission_removes_it(
    cp: ControlPlane, tmp_path: Path
) -> None:
    # The power model comes from the inventory, as operators record it per server model.
    inventory = write_inventory(
        tmp_path, "tpe-sim-01 govcloud_idle_watts=120 govcloud_peak_watts=380.5"
    )
    state = tmp_path / "hosts" / "tpe-sim-01"
    args = ["host", "enrol", "-i", str(inventory), "--dc", DC, "--simulated"]
    args += ["--vcpus", "32", "--ram-mib", "131072", "--timeout", "60", "-o", "json"]

    first = govcloud(cp, *args, home=tmp_path)
    assert first.exit_code == 0, first.output
    [row] = summary(first.stdout)
    assert row["result"] == "enrolled"
    assert row["changed"] > 0
    host = cp.client.get_host("tpe-sim-01")
    assert host.state.value == "active"
    assert host.datacentre == DC
    assert (host.capacity.vcpus, host.capacity.ram_mib) == (32, 131072)
    assert row["host_id"] == host.id
    assert (host.idle_watts, host.peak_watts) == (120, 380.5)
    assert row["power"] == "120-380.5 W"
    assert "Start the agent under the supervisor" in first.stderr  # live per-task progress
    assert supervisor_running(state)
    assert (state / "credential.json").exists()
    assert not (state / "bootstrap.env").exists()  # the used token does not linger
    assert "bootstrap_token" not in (state / "agent.yaml").read_text()

    second = govcloud(cp, *args, home=tmp_path)
    assert second.exit_code == 0, second.output
    [again] = summary(second.stdout)
    assert again["result"] == "already-enrolled"
    assert again["changed"] == 0
    assert again["host_id"] == host.id
    assert [h.name for h in cp.client.list_hosts()] == ["tpe-sim-01"]

    gone = govcloud(
        cp,
        *["host", "decommission", "-i", str(inventory), "--simulated", "-o", "json"],
        home=tmp_path,
    )
    assert gone.exit_code == 0, gone.output
    [retired] = summary(gone.stdout)
    assert retired["result"] == "decommissioned"
    assert cp.client.get_host("tpe-sim-01").state.value == "disabled"
    assert not state.exists()
    assert processes_under(state) == []


def test_bad_power_model_is_refused_before_anything_runs(cp: ControlPlane, tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, "tpe-sim-03 govcloud_idle_watts=500 govcloud_peak_watts=200"
    )
    result = govcloud(
        cp, *["host", "enrol", "-i", str(inventory), "--dc", DC, "--simulated"], home=tmp_path
    )
    assert result.exit_code == 2, result.output
    assert "host tpe-sim-03: govcloud_peak_watts=200" in result.stderr
    assert "must be at least idle_watts (500" in result.stderr
    assert "fix the variable in the inventory" in result.stderr
    assert cp.client.list_hosts() == []  # no token issued, no playbook run
    assert not (tmp_path / "hosts" / "tpe-sim-03").exists()

    half = write_inventory(tmp_path, "tpe-sim-03 govcloud_idle_watts=150")
    result = govcloud(
        cp, *["host", "enrol", "-i", str(half), "--dc", DC, "--simulated"], home=tmp_path
    )
    assert result.exit_code == 2, result.output
    assert "host tpe-sim-03: govcloud_peak_watts is missing" in result.stderr
    assert cp.client.list_hosts() == []


def test_agent_that_cannot_register_fails_cleanly(cp: ControlPlane, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, "tpe-sim-02")
    state = tmp_path / "hosts" / "tpe-sim-02"
    result = govcloud(
        cp,
        *["host", "enrol", "-i", str(inventory), "--dc", DC, "--simulated"],
        *["--agent-url", "http://127.0.0.1:9", "--timeout", "4"],
        home=tmp_path,
    )
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert "tpe-sim-02 enrolment failed at task 'Report that the agent did not register'" in err
    assert "did not register within 4 s" in err
    assert "cannot reach the control plane" in err  # the agent's own log, quoted
    assert "Next:" in err
    assert cp.client.list_hosts() == []  # nothing half-registered
    assert not supervisor_running(state)
    assert not (state / "bootstrap.env").exists()
    deadline = time.monotonic() + 15  # processes that were signalled may still be exiting
    while processes_under(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(state) == []
