"""End to end: the agent process is killed while its real VM keeps running; the fence
watchdog (``govcloud-fence``, a separate process with the agent's config) destroys the VM
before the control plane evacuates the instance.

Everything is real: uvicorn serving the API on loopback (fast liveness timings: DOWN after
3 s, lease 6 s, evacuation after 6 + 6 s), ``govcloud-agent`` and ``govcloud-fence`` as
processes, a sandboxed libvirtd running the tiny guest under qemu. The order of events is
what is asserted (fenced, then evacuated), never how long they took.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.client import GovcloudClient, wait_for_instance
from controlplane.domain.evacuation import EvacuationPolicy
from controlplane.domain.instance import InstanceState
from controlplane.schemas.catalog import DataCentreUpdate
from controlplane.schemas.host import BootstrapTokenCreate
from controlplane.schemas.instance import InstanceCreate
from tests.e2e.liveserver import served_client, wait_until
from tests.e2e.test_agent_real_guest import _seed

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[tuple[GovcloudClient, str]]:
    with served_client(
        tmp_path,
        max_poll_wait_s=2,
        pending_retry_interval_s=0.5,
        heartbeat_interval_s=1,
        host_suspect_after_s=2,
        host_down_after_s=3,
        liveness_interval_s=0.5,
        host_fence_after_s=6,
        evacuation_margin_s=6,
    ) as served:
        yield served


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    yield running
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_killed_agents_vm_is_destroyed_by_the_watchdog_before_evacuation(
    control_plane: tuple[GovcloudClient, str],
    libvirt_uri: str,
    conn: Any,
    tiny_guest: tuple[Path, Path],
    tmp_path: Path,
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    client, url = control_plane
    kernel, initrd = tiny_guest
    _seed(client, kernel, initrd)
    client.update_datacentre(
        "tpe-1", DataCentreUpdate(evacuation_policy=EvacuationPolicy.RESTART_ELSEWHERE)
    )
    token = client.create_bootstrap_token(BootstrapTokenCreate(datacentre="tpe-1")).token
    state = tmp_path / "agent"
    config = tmp_path / "agent.yaml"
    config.write_text(
        json.dumps(
            {
                "control_plane_url": url,
                "name": "tpe-1-fence-01",
                "capacity": {"vcpus": 2, "ram_mib": 2048, "disk_gib": 10},
                "libvirt_uri": libvirt_uri,
                "domain_type": "qemu",
                "state_dir": str(state),
                "tcg_tb_cache_mib": 16,
                "heartbeat_interval_s": 1,
                "poll_wait_s": 2,
                "resync_interval_s": 2,
                "stop_timeout_s": 5,
                "fence_check_interval_s": 0.5,
            }
        )
    )
    env = os.environ | {"GOVCLOUD_AGENT_BOOTSTRAP_TOKEN": token}
    with (tmp_path / "agent.log").open("ab") as agent_log:
        processes["agent"] = subprocess.Popen(
            [str(BIN / "govcloud-agent"), "--config", str(config)],
            env=env,
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
    fence_log = tmp_path / "fence.log"
    with fence_log.open("ab") as out:
        processes["fence"] = subprocess.Popen(
            [str(BIN / "govcloud-fence"), "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: any(h.name == "tpe-1-fence-01" for h in client.list_hosts()), 60)
    created = client.create_instance(
        InstanceCreate(name="dr-web-01", project="disaster", flavor="t1.tiny", image="busybox-tiny")
    )
    running = wait_for_instance(
        client,
        created.id,
        lambda inst: inst.state in (InstanceState.RUNNING, InstanceState.ERROR),
        awaited="RUNNING",
        timeout_s=180,
    )
    assert running.state is InstanceState.RUNNING, running.fault
    domain = conn.lookupByUUIDString(created.id)
    assert domain.isActive()

    processes["agent"].send_signal(signal.SIGKILL)  # the agent dies; the VM keeps running
    processes["agent"].wait()
    assert domain.isActive()

    fenced_at = evacuated_at = None
    deadline = time.monotonic() + 120
    while evacuated_at is None and time.monotonic() < deadline:
        if fenced_at is None and not domain.isActive():
            fenced_at = time.monotonic()
        if client.get_instance(created.id).state is InstanceState.PENDING:
            evacuated_at = time.monotonic()
        time.sleep(0.1)
    assert evacuated_at is not None, "the instance was never evacuated"
    assert fenced_at is not None, "the VM was still running when the instance was evacuated"
    assert fenced_at < evacuated_at
    assert domain.isPersistent()  # destroyed, not undefined
    assert "FENCED instance=" + created.id in fence_log.read_text()
    actions = [a.action for a in client.instance_actions(created.id)]
    assert actions[-2:] == ["host-down", "evacuate"]
