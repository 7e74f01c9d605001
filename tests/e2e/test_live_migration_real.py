"""End to end: a live migration between two real libvirtd daemons, driven by govcloud.

Two sandboxed root libvirtds (each its own ``host_uuid``, see scripts/libvirtd-sandbox.sh)
stand for two hosts of one data centre, each with a real govcloud agent. The control plane
places the tiny guest on host 1; ``POST /v1/instances/{id}/migrate`` claims host 2; host 1's
agent calls ``virDomainMigrateToURI3`` (LIVE | PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE)
to host 2's daemon; host 2's agent reports the arrived domain RUNNING and the control plane
switches the instance over and releases host 1's claim. The guest keeps running throughout
(same qemu process state, software emulation) and is defined only on host 2 afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.config import AgentSettings
from agents.main import build_agent
from controlplane.client import GovcloudClient, wait_for_instance
from controlplane.domain.instance import InstanceState
from controlplane.domain.migration import MigrationPhase
from controlplane.schemas.catalog import DataCentreCreate, FlavorCreate, ImageCreate
from controlplane.schemas.host import BootstrapTokenCreate
from controlplane.schemas.instance import InstanceCreate
from controlplane.schemas.org import OrgCreate
from tests.e2e.conftest import require_real_virt
from tests.e2e.liveserver import served_client, wait_until
from tests.e2e.realvirt import start_libvirtd, stop_libvirtd, wait_for_marker

pytestmark = pytest.mark.e2e

BOOT_TIMEOUT_S = 180.0


@pytest.fixture
def two_daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """URIs of two sandboxed libvirtds (distinct host UUIDs), stopped afterwards."""
    require_real_virt()
    dirs = [tmp_path_factory.mktemp("lv-a"), tmp_path_factory.mktemp("lv-b")]
    started: list[Path] = []
    try:
        uris = []
        for statedir in dirs:
            uris.append(start_libvirtd(statedir))
            started.append(statedir)
        yield uris[0], uris[1]
    finally:
        for statedir in started:
            stop_libvirtd(statedir)


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[tuple[GovcloudClient, str]]:
    with served_client(
        tmp_path,
        max_poll_wait_s=1,
        pending_retry_interval_s=0.5,
        drain_interval_s=0.5,
        migration_timeout_s=240,
    ) as served:
        yield served


def agent_settings(url: str, token: str, name: str, uri: str, state: Path) -> AgentSettings:
    return AgentSettings(
        control_plane_url=url,
        bootstrap_token=token,
        name=name,
        capacity={"vcpus": 2, "ram_mib": 2048, "disk_gib": 10},
        libvirt_uri=uri,
        domain_type="qemu",
        state_dir=state,
        tcg_tb_cache_mib=16,
        hard_reboot=True,
        heartbeat_interval_s=1,
        poll_wait_s=1,
        resync_interval_s=1,
        stop_timeout_s=5,
    )


def test_live_migration_between_two_real_daemons(
    control_plane: tuple[GovcloudClient, str],
    two_daemons: tuple[str, str],
    tiny_guest: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    import libvirt

    client, url = control_plane
    kernel, initrd = tiny_guest
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

    def token() -> str:
        return client.create_bootstrap_token(BootstrapTokenCreate(datacentre="tpe-1")).token

    one = build_agent(agent_settings(url, token(), "tpe-1-a", two_daemons[0], tmp_path / "a"))
    two = build_agent(agent_settings(url, token(), "tpe-1-b", two_daemons[1], tmp_path / "b"))
    conn_a, conn_b = libvirt.open(two_daemons[0]), libvirt.open(two_daemons[1])
    try:
        with one.running():
            wait_until(lambda: any(h.name == "tpe-1-a" for h in client.list_hosts()), 60)
            created = client.create_instance(
                InstanceCreate(
                    name="dr-web-01", project="disaster", flavor="t1.tiny", image="busybox-tiny"
                )
            )
            assert created.host_name == "tpe-1-a"
            running = wait_for_instance(
                client,
                created.id,
                lambda i: i.state in (InstanceState.RUNNING, InstanceState.ERROR),
                awaited="RUNNING",
                timeout_s=BOOT_TIMEOUT_S,
            )
            assert running.state is InstanceState.RUNNING, running.fault
            serial = one.settings.serial_dir
            assert serial is not None
            wait_for_marker(serial / f"gc-{created.id}.log", BOOT_TIMEOUT_S)
            with two.running():
                wait_until(lambda: any(h.name == "tpe-1-b" for h in client.list_hosts()), 60)
                mig = client.migrate_instance(created.id)
                assert (mig.source_host, mig.target_host) == ("tpe-1-a", "tpe-1-b")

                def finished() -> bool:
                    phase = client.get_migration(mig.id).phase
                    return phase in (MigrationPhase.DONE, MigrationPhase.FAILED)

                wait_until(finished, 240)
                done = client.get_migration(mig.id)
                assert done.phase is MigrationPhase.DONE, done.message
                assert "live-migrated by libvirt" in done.message  # not a pause-and-move
                moved = client.get_instance(created.id)
                assert (moved.state, moved.host_name) == (InstanceState.RUNNING, "tpe-1-b")
                dom = conn_b.lookupByUUIDString(created.id)
                assert dom.isActive()
                assert dom.isPersistent()
                assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
                # Undefined on the source (UNDEFINE_SOURCE): never two copies.
                wait_until(lambda: f"gc-{created.id}" not in conn_a.listDefinedDomains(), 30)
                assert created.id not in [d.UUIDString() for d in conn_a.listAllDomains(0)]
                host_a = client.get_host("tpe-1-a")
                assert host_a.used.vcpus == 0
                assert client.get_host("tpe-1-b").used.vcpus == 1
                actions = [(a.action, a.result) for a in client.instance_actions(created.id)]
                assert actions[-1] == ("migrate", "success")
                # The guest kept running: same boot (the console log shows one boot only).
                log = (serial / f"gc-{created.id}.log").read_text(errors="replace")
                assert log.count("GOVCLOUD-GUEST-BOOTED") == 1
    finally:
        conn_a.close()
        conn_b.close()
