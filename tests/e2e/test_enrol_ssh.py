"""Enrolment over SSH: the real ``enrol`` playbook, through ``govcloud host enrol``, against
a host with its own address (a network namespace with its own sshd, :mod:`tests.e2e.netns`).

The control plane listens on the namespace's gateway address, so the agent started inside
the namespace (over ssh, by the playbook) reaches it the way a real host would. The
namespace shares this machine's filesystem, so the run is in simulated mode (no packages,
the agent executable of this checkout, state under the test's temp dir); what is exercised
is the ssh transport, the role's tasks on a remote python, the supervisor detached from the
ssh session, registration from another address, and the CLI's reporting. Package
installation, the wheel install and systemd are not exercised here (docs/enrolment.md).

Two inventory hosts on the same sshd: ``ns-h01`` enrols; ``ns-h02`` names an agent
executable that does not exist, so its run fails and must be reported with host, task and
error, with no host row created for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.enrolkit import DC, ControlPlane, control_plane, govcloud, kill_agents_under
from tests.e2e.netns import SshHost, ssh_host, unavailable_reason

pytestmark = pytest.mark.e2e


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[SshHost]:
    """A namespaced sshd (skipped, or failed with GOVCLOUD_REQUIRE_E2E=1, when impossible)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        with ssh_host(tmp_path / "ssh") as host:
            yield host
    finally:
        kill_agents_under(tmp_path)


@pytest.fixture
def cp(remote: SshHost, tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane on the namespace's gateway address."""
    with control_plane(tmp_path, address=remote.gateway) as plane:
        yield plane


def test_enrol_over_ssh_and_report_a_failing_host(
    remote: SshHost, cp: ControlPlane, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "\n".join(
            [
                "[dc]",
                f"ns-h01 {remote.inventory_vars()}",
                f"ns-h02 {remote.inventory_vars()} govcloud_agent_bin=/nonexistent/govcloud-agent",
                "[dc:vars]",
                f"govcloud_sim_root={tmp_path / 'hosts'}",
                "govcloud_poll_wait_s=1",
                "govcloud_heartbeat_interval_s=2",
                "",
            ]
        )
    )
    result = govcloud(
        cp,
        *["host", "enrol", "-i", str(inventory), "--dc", DC, "--simulated", "--vcpus", "8"],
        *["--timeout", "60"],
        home=tmp_path,
    )
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert "ns-h02 enrolment failed at task 'Fail when the agent executable is missing'" in err
    assert "govcloud-agent not found or not executable at /nonexistent/govcloud-agent" in err
    assert "Next:" in err
    assert "ns-h01" in result.stdout  # the summary table
    assert "enrolled" in result.stdout

    [host] = cp.client.list_hosts()  # ns-h02 left nothing behind
    assert host.name == "ns-h01"
    assert host.state.value == "active"
    assert host.capacity.vcpus == 8
    state = tmp_path / "hosts" / "ns-h01"
    assert (state / "credential.json").exists()
    assert not (tmp_path / "hosts" / "ns-h02" / "bootstrap.env").exists()
    # The agent runs inside the namespace (started over ssh, detached from the session).
    pids = os.popen(f"ip netns pids {remote.namespace}").read().split()
    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in pids]
    assert any(b"govcloud-agentctl" in c and str(state).encode() in c for c in cmdlines)
