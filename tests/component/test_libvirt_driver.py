"""The libvirt driver against libvirt's real test driver (``test:///<tmp>/host.xml``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.drivers.base import (
    DomainNotFound,
    HostDriver,
    InstanceMetadata,
    PermanentDriverError,
    PowerState,
    TemporaryDriverError,
)
from agents.drivers.domainxml import METADATA_NS
from agents.drivers.hostxml import ForeignDomain, write_host_xml
from agents.drivers.libvirt import LibvirtDriver
from agents.protocol.v1 import DesiredState, ImageSpec
from tests.component.agent_harness import (
    DISK_IMAGE,
    SimulatedHost,
    assignment,
    simulated_host,
)

#: A format the protocol refuses, passed unvalidated to test the driver's own check.
VMDK: Any = "vmdk"

RUNNING, SHUTOFF = 1, 5  # libvirt state numbers, as an operator's virsh would see them


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SimulatedHost]:
    sim = simulated_host(
        tmp_path,
        foreign=(ForeignDomain("legacy-db", ram_mib=512), ForeignDomain("old-app", running=False)),
    )
    yield sim
    sim.driver.close()


def test_driver_satisfies_the_protocol(host: SimulatedHost) -> None:
    assert isinstance(host.driver, HostDriver)
    assert host.driver.uri == host.uri
    assert host.uri == f"test://{(host.state_dir / 'host.xml').resolve()}"


def test_simulated_host_has_the_configured_capacity(tmp_path: Path) -> None:
    sim = simulated_host(tmp_path, vcpus=6, ram_mib=12288)
    _model, memory_mib, cpus = sim.driver.connection.getInfo()[:3]
    assert (cpus, memory_mib) == (6, 12288)
    sim.driver.close()


def test_each_open_of_a_host_file_is_a_private_host(tmp_path: Path) -> None:
    uri = write_host_xml(tmp_path, vcpus=2, ram_mib=2048)
    first, second = LibvirtDriver(uri), LibvirtDriver(uri)
    a = assignment()
    first.define(a, start=True)
    assert first.get(a.instance_id) is not None
    assert second.get(a.instance_id) is None
    first.close()
    second.close()


def test_define_and_start_builds_the_named_domain_with_metadata(host: SimulatedHost) -> None:
    a = assignment("web-1", reboot_seq=3)
    info = host.driver.define(a, start=True)
    assert info.state is PowerState.RUNNING
    assert info.domain_name == f"gc-{a.instance_id}"
    assert info.metadata == InstanceMetadata(a.instance_id, "web-1", 3)
    raw = host.raw_domain(f"gc-{a.instance_id}")
    assert raw.UUIDString() == a.instance_id
    meta = ET.fromstring(raw.XMLDesc(0)).find(f"metadata/{{{METADATA_NS}}}instance")
    assert meta is not None
    assert meta.findtext(f"{{{METADATA_NS}}}name") == "web-1"


def test_define_without_start_leaves_it_shut_off(host: SimulatedHost) -> None:
    a = assignment(desired=DesiredState.STOPPED, image=DISK_IMAGE)
    info = host.driver.define(a, start=False)
    assert info.state is PowerState.STOPPED
    assert host.raw_state(f"gc-{a.instance_id}") == SHUTOFF


def test_defining_twice_updates_one_domain(host: SimulatedHost) -> None:
    a = assignment()
    host.driver.define(a, start=True)
    again = host.driver.define(a.model_copy(update={"ram_mib": 512}), start=True)
    assert again.state is PowerState.RUNNING
    assert [d.instance_id for d in host.driver.list_domains()] == [a.instance_id]


def test_power_cycle_is_idempotent(host: SimulatedHost) -> None:
    a = assignment()
    d = host.driver
    d.define(a, start=False)
    assert d.start(a.instance_id).state is PowerState.RUNNING
    assert d.start(a.instance_id).state is PowerState.RUNNING  # no-op
    assert d.stop(a.instance_id).state is PowerState.STOPPED  # graceful
    assert d.stop(a.instance_id).state is PowerState.STOPPED  # no-op
    d.start(a.instance_id)
    assert d.stop(a.instance_id, force=True).state is PowerState.STOPPED


def test_start_resumes_a_paused_domain(host: SimulatedHost) -> None:
    a = assignment()
    host.driver.define(a, start=True)
    host.raw_domain(f"gc-{a.instance_id}").suspend()
    assert host.driver.get(a.instance_id).state is PowerState.PAUSED  # type: ignore[union-attr]
    assert host.driver.start(a.instance_id).state is PowerState.RUNNING


def test_reboot_keeps_it_running_and_needs_it_running(host: SimulatedHost) -> None:
    a = assignment()
    host.driver.define(a, start=True)
    assert host.driver.reboot(a.instance_id).state is PowerState.RUNNING
    assert host.driver.reboot(a.instance_id, hard=True).state is PowerState.RUNNING
    host.driver.stop(a.instance_id)
    with pytest.raises(PermanentDriverError, match="not running"):
        host.driver.reboot(a.instance_id)


def test_metadata_survives_stop_and_start(host: SimulatedHost) -> None:
    a = assignment("db-1")
    host.driver.define(a, start=True)
    host.driver.write_metadata(InstanceMetadata(a.instance_id, "db-1", 7))
    host.driver.stop(a.instance_id)
    host.driver.start(a.instance_id)
    assert host.driver.read_metadata(a.instance_id) == InstanceMetadata(a.instance_id, "db-1", 7)
    assert host.driver.get(a.instance_id).reboot_seq == 7  # type: ignore[union-attr]


def test_delete_destroys_and_undefines(host: SimulatedHost) -> None:
    running, stopped = assignment("a"), assignment("b")
    host.driver.define(running, start=True)
    host.driver.define(stopped, start=False)
    assert host.driver.delete(running.instance_id) is True
    assert host.driver.delete(stopped.instance_id) is True
    assert host.driver.delete(stopped.instance_id) is False  # already gone
    assert host.driver.list_domains() == []
    assert host.domain_names() == {"legacy-db", "old-app"}


def test_foreign_domains_are_invisible_and_untouched(host: SimulatedHost) -> None:
    a = assignment()
    host.driver.define(a, start=True)
    assert [d.instance_id for d in host.driver.list_domains()] == [a.instance_id]
    host.driver.delete(a.instance_id)
    assert host.raw_state("legacy-db") == RUNNING
    assert host.raw_state("old-app") == SHUTOFF


def test_missing_domain_is_a_permanent_not_found(host: SimulatedHost) -> None:
    missing = assignment().instance_id
    assert host.driver.get(missing) is None
    with pytest.raises(DomainNotFound) as caught:
        host.driver.start(missing)
    assert caught.value.permanent
    assert caught.value.instance_id == missing


def test_invalid_definition_is_permanent(host: SimulatedHost) -> None:
    bad_image = ImageSpec.model_construct(name="odd", format=VMDK, path="/images/odd.vmdk")
    with pytest.raises(PermanentDriverError, match="vmdk"):
        host.driver.define(assignment(image=bad_image), start=True)
    not_uuid = assignment().model_copy(update={"instance_id": "not-a-uuid"})
    with pytest.raises(PermanentDriverError, match="not a UUID"):
        host.driver.define(not_uuid, start=True)
    assert host.driver.list_domains() == []


def test_a_domain_removed_behind_the_drivers_back_is_absent(host: SimulatedHost) -> None:
    a = assignment()
    host.driver.define(a, start=True)
    raw = host.raw_domain(f"gc-{a.instance_id}")
    raw.destroy()
    raw.undefine()
    assert host.driver.get(a.instance_id) is None
    assert host.driver.list_domains() == []


def test_unreachable_hypervisor_is_temporary(tmp_path: Path) -> None:
    with pytest.raises(TemporaryDriverError, match="cannot connect"):
        LibvirtDriver(f"test://{tmp_path}/missing-host.xml")


def test_closed_driver_refuses_work(tmp_path: Path) -> None:
    sim = simulated_host(tmp_path)
    sim.driver.close()
    with pytest.raises(PermanentDriverError, match="closed"):
        sim.driver.list_domains()
