"""End to end: the control plane places a VM, a real govcloud agent boots it under a real
libvirtd with qemu (software emulation), the control plane sees it RUNNING, then deletes it.

Everything is real: uvicorn serving the API over HTTP on loopback, the agent's HTTP client,
libvirtd in its sandbox, qemu running the Debian kernel with a busybox initramfs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.config import AgentSettings
from agents.main import build_agent
from controlplane.client import GovcloudClient, wait_for_instance
from controlplane.domain.instance import Instance, InstanceState
from controlplane.schemas.catalog import DataCentreCreate, FlavorCreate, ImageCreate
from controlplane.schemas.host import BootstrapTokenCreate
from controlplane.schemas.instance import InstanceCreate
from controlplane.schemas.org import OrgCreate
from tests.e2e.liveserver import served_client, wait_until
from tests.e2e.realvirt import wait_for_marker

pytestmark = pytest.mark.e2e

BOOT_TIMEOUT_S = 180.0


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[tuple[GovcloudClient, str]]:
    """A served control plane on SQLite and an admin client for it."""
    with served_client(tmp_path, max_poll_wait_s=2, pending_retry_interval_s=0.5) as served:
        yield served


def _seed(client: GovcloudClient, kernel: Path, initrd: Path) -> None:
    client.create_datacentre(DataCentreCreate(code="tpe-1", name="Taipei 1"))
    client.create_flavor(FlavorCreate(name="t1.tiny", vcpus=1, ram_mib=128, disk_gib=0))
    client.create_image(
        ImageCreate(
            name="busybox-tiny",
            format="kernel",
            kernel_path=str(kernel.resolve()),
            initrd_path=str(initrd.resolve()),
            cmdline="console=ttyS0 panic=-1",
        )
    )
    client.create_org(OrgCreate(code="moi", name="Ministry of the Interior", parent="gov"))
    client.create_org(OrgCreate(code="nfa", name="National Fire Agency", parent="moi"))
    client.create_org(OrgCreate(code="disaster", name="Disaster cloud", parent="nfa"))


def test_agent_boots_a_real_guest_and_deletes_it(
    control_plane: tuple[GovcloudClient, str],
    libvirt_uri: str,
    conn: Any,
    tiny_guest: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    import libvirt

    client, url = control_plane
    kernel, initrd = tiny_guest
    _seed(client, kernel, initrd)
    token = client.create_bootstrap_token(BootstrapTokenCreate(datacentre="tpe-1")).token
    settings = AgentSettings(
        control_plane_url=url,
        bootstrap_token=token,
        name="tpe-1-real-01",
        capacity={"vcpus": 2, "ram_mib": 2048, "disk_gib": 10},
        libvirt_uri=libvirt_uri,
        domain_type="qemu",
        state_dir=tmp_path / "agent",
        tcg_tb_cache_mib=16,
        hard_reboot=True,
        heartbeat_interval_s=1,
        poll_wait_s=2,
        resync_interval_s=2,
        stop_timeout_s=5,
    )
    agent = build_agent(settings)
    with agent.running():
        # The agent registers from its own thread: wait until the host is known.
        wait_until(lambda: any(h.name == settings.name for h in client.list_hosts()), 60)
        created = client.create_instance(
            InstanceCreate(
                name="dr-web-01", project="disaster", flavor="t1.tiny", image="busybox-tiny"
            )
        )
        assert created.host_name == "tpe-1-real-01"

        def state_is(*states: InstanceState) -> Any:
            return lambda inst: inst.state in states

        running: Instance = wait_for_instance(
            client,
            created.id,
            state_is(InstanceState.RUNNING, InstanceState.ERROR),
            awaited="RUNNING",
            timeout_s=BOOT_TIMEOUT_S,
        )
        assert running.state is InstanceState.RUNNING, running.fault
        domain = conn.lookupByUUIDString(created.id)
        assert domain.name() == f"gc-{created.id}"
        assert domain.isActive()
        assert settings.serial_dir is not None
        wait_for_marker(settings.serial_dir / f"gc-{created.id}.log", BOOT_TIMEOUT_S)

        client.delete_instance(created.id)
        gone = wait_for_instance(
            client,
            created.id,
            state_is(InstanceState.DELETED),
            awaited="DELETED",
            timeout_s=120,
        )
        assert gone.state is InstanceState.DELETED
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(created.id)
        host = client.get_host("tpe-1-real-01")
        assert host.used.vcpus == 0
        assert host.used.ram_mib == 0
        actions = [(a.action, a.result) for a in client.instance_actions(created.id)]
        assert actions == [("create", "success"), ("delete", "success")]
