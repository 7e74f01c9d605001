"""The enrol playbook starts the fence watchdog next to the agent (supervisor mode, no
systemd here), keeps it supervised, and decommission stops it.

A simulated host through the real playbook (``ansible_connection=local``): after
``govcloud host enrol --simulated`` a second supervisor (``govcloud-agentctl
supervise-fence``) runs ``govcloud-fence`` with the agent's config, the agent keeps the
fence lease fresh, ``govcloud-agentctl status`` lists both, a killed watchdog is restarted,
and ``host decommission`` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.enrolkit import (
    DC,
    ControlPlane,
    govcloud,
    processes_under,
)
from tests.e2e.test_enrol_local import write_inventory

pytestmark = pytest.mark.e2e


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def fence_processes(state: Path) -> list[int]:
    """The ``govcloud-fence`` processes (not their supervisor) of the host in ``state``."""
    return [pid for pid in processes_under(state) if "govcloud-fence --config" in _cmdline(pid)]


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_enrol_runs_the_fence_watchdog_and_decommission_stops_it(
    cp: ControlPlane, tmp_path: Path
) -> None:
    inventory = write_inventory(tmp_path, "tpe-sim-09")
    state = tmp_path / "hosts" / "tpe-sim-09"
    enrolled = govcloud(
        cp,
        *["host", "enrol", "-i", str(inventory), "--dc", DC, "--simulated", "--timeout", "60"],
        home=tmp_path,
    )
    assert enrolled.exit_code == 0, enrolled.output

    assert wait_for(lambda: fence_processes(state) != [])
    assert wait_for(lambda: (state / "fence-lease.json").exists())
    lease = json.loads((state / "fence-lease.json").read_text())
    assert lease["host"] == "tpe-sim-09"
    assert lease["fence_after_s"] == 0.0  # policy none: nothing to fence
    assert (state / "fence-supervisor.pid").exists()
    status = subprocess.run(
        [str(state / "govcloud-agentctl"), "status"], capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr
    assert "fence running" in status.stdout
    assert wait_for(lambda: "watching" in (state / "fence.log").read_text())

    # The watchdog is supervised: killed, it comes back.
    [first] = fence_processes(state)
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: fence_processes(state) not in ([], [first]))

    gone = govcloud(
        cp, *["host", "decommission", "-i", str(inventory), "--simulated"], home=tmp_path
    )
    assert gone.exit_code == 0, gone.output
    assert not state.exists()
    assert wait_for(lambda: processes_under(state) == [], 15)
