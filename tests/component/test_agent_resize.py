"""The agent applying a resize on a real libvirt test-driver host.

A shut-off domain whose vCPU/memory sizes differ from its assignment is redefined in place
(same name and UUID, govcloud metadata kept) and reported with its new sizes; a running
domain is never redefined. The control plane is the in-memory ``FakeControlPlane`` and time
a ``FakeClock`` (see ``agent_harness``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.agent import Agent
from agents.drivers.base import InstanceMetadata, PowerState, domain_name
from agents.protocol.v1 import ActualState, DesiredState
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    RecordingDriver,
    SimulatedHost,
    agent_settings,
    assignment,
)

RUNNING, SHUTOFF = 1, 5


@pytest.fixture
def cp() -> FakeControlPlane:
    return FakeControlPlane(clock=FakeClock())


@pytest.fixture
def driver(host: SimulatedHost) -> RecordingDriver:
    return RecordingDriver(host.driver)


@pytest.fixture
def agent(tmp_path: Path, cp: FakeControlPlane, driver: RecordingDriver) -> Agent:
    assert cp.clock is not None
    return Agent(agent_settings(tmp_path / "agent"), driver, cp, clock=cp.clock)


def sizes(host: SimulatedHost, instance_id: str) -> tuple[int, int, int]:
    """(libvirt state, vCPUs, memory MiB) of the instance's domain, read behind the agent."""
    state, max_kib, _, vcpus, _ = host.raw_domain(domain_name(instance_id)).info()
    return int(state), int(vcpus), int(max_kib) // 1024


def test_a_stopped_domain_is_redefined_with_the_new_size_keeping_its_metadata(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver, host: SimulatedHost
) -> None:
    web = assignment("web", desired=DesiredState.STOPPED, vcpus=1, ram_mib=256, reboot_seq=2)
    cp.assign(web)
    agent.sync()
    assert sizes(host, web.instance_id) == (SHUTOFF, 1, 256)
    status = cp.latest(web.instance_id)
    assert status is not None
    assert (status.state, status.vcpus, status.ram_mib) == (ActualState.STOPPED, 1, 256)
    uuid_before = host.raw_domain(domain_name(web.instance_id)).UUIDString()
    # The domain's metadata is its own: a redefine must not overwrite it with the
    # assignment's (here older) reboot_seq.
    driver.write_metadata(InstanceMetadata(web.instance_id, "web", reboot_seq=3))
    driver.calls.clear()

    cp.update(web.instance_id, flavor="m1.medium", vcpus=2, ram_mib=1024)
    agent.sync()

    assert sizes(host, web.instance_id) == (SHUTOFF, 2, 1024)  # redefined, still shut off
    assert host.raw_domain(domain_name(web.instance_id)).UUIDString() == uuid_before
    assert driver.actions() == ["define"]
    assert driver.read_metadata(web.instance_id) == InstanceMetadata(
        web.instance_id, "web", reboot_seq=3
    )
    status = cp.latest(web.instance_id)
    assert status is not None
    assert (status.state, status.vcpus, status.ram_mib) == (ActualState.STOPPED, 2, 1024)
    assert len(host.domain_names()) == 1  # one domain, not a second copy

    driver.calls.clear()
    agent.sync(force=True)  # converged: nothing more to do
    assert driver.actions() == []

    cp.update(web.instance_id, desired=DesiredState.RUNNING)
    agent.sync()
    assert sizes(host, web.instance_id) == (RUNNING, 2, 1024)  # boots at the new size


def test_a_running_domain_is_never_redefined(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver, host: SimulatedHost
) -> None:
    web = assignment("web", vcpus=1, ram_mib=256)
    cp.assign(web)
    agent.sync()
    assert sizes(host, web.instance_id) == (RUNNING, 1, 256)
    driver.calls.clear()

    cp.update(web.instance_id, vcpus=4, ram_mib=2048)
    agent.sync()
    agent.sync(force=True)

    assert driver.actions() == []
    assert sizes(host, web.instance_id) == (RUNNING, 1, 256)
    status = cp.latest(web.instance_id)
    assert status is not None
    assert (status.state, status.vcpus, status.ram_mib) == (ActualState.RUNNING, 1, 256)

    # Once it is stopped it is resized on the next pass (never while it runs).
    cp.update(web.instance_id, desired=DesiredState.STOPPED)
    agent.sync()
    assert driver.actions() == ["stop"]
    assert sizes(host, web.instance_id) == (SHUTOFF, 1, 256)
    agent.sync(force=True)
    assert driver.actions() == ["stop", "define"]
    assert sizes(host, web.instance_id) == (SHUTOFF, 4, 2048)


def test_a_start_asked_before_the_resize_was_applied_boots_the_new_size(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver, host: SimulatedHost
) -> None:
    web = assignment("web", desired=DesiredState.STOPPED, vcpus=1, ram_mib=256)
    cp.assign(web)
    agent.sync()
    driver.calls.clear()
    cp.update(web.instance_id, vcpus=2, ram_mib=512, desired=DesiredState.RUNNING)
    agent.sync()
    assert driver.actions() == ["define", "start"]
    assert sizes(host, web.instance_id) == (RUNNING, 2, 512)
    info = driver.get(web.instance_id)
    assert info is not None
    assert (info.state, info.vcpus, info.ram_mib) == (PowerState.RUNNING, 2, 512)
