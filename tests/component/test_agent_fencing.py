"""Self-fencing: an agent cut off from the control plane past its lease powers its domains
off, so an evacuation elsewhere can never make an instance run twice. Real libvirt test
driver host; the control plane is the in-memory stand-in (partition = unreachable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.agent import Agent
from agents.client import ControlPlaneError
from agents.drivers.base import PowerState
from agents.protocol.v1 import ActualState
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    SimulatedHost,
    agent_settings,
    assignment,
)

LEASE_S = 30.0


@pytest.fixture
def cp(clock: FakeClock) -> FakeControlPlane:
    plane = FakeControlPlane(clock=clock)
    plane.fence_after_s = LEASE_S
    return plane


@pytest.fixture
def agent(tmp_path: Path, host: SimulatedHost, cp: FakeControlPlane, clock: FakeClock) -> Agent:
    agent = Agent(agent_settings(tmp_path / "agent"), host.driver, cp, clock=clock)
    agent.ensure_registered()
    agent.heartbeat()
    return agent


def running_instance(agent: Agent, cp: FakeControlPlane) -> str:
    a = assignment()
    cp.assign(a)
    agent.sync(force=True)
    assert cp.latest(a.instance_id).state is ActualState.RUNNING  # type: ignore[union-attr]
    return a.instance_id


def power(host: SimulatedHost, instance_id: str) -> PowerState:
    domain = host.driver.get(instance_id)
    assert domain is not None
    return domain.state


def partition(agent: Agent, cp: FakeControlPlane, clock: FakeClock, seconds: float) -> None:
    cp.reachable = False
    clock.advance(seconds)
    with pytest.raises(ControlPlaneError):
        agent.heartbeat()


def test_within_the_lease_nothing_is_fenced(
    agent: Agent, cp: FakeControlPlane, clock: FakeClock, host: SimulatedHost
) -> None:
    instance_id = running_instance(agent, cp)
    partition(agent, cp, clock, LEASE_S - 1)
    assert agent.check_isolation() is False
    assert power(host, instance_id) is PowerState.RUNNING


def test_past_the_lease_domains_are_powered_off_and_restarted_when_still_assigned(
    agent: Agent, cp: FakeControlPlane, clock: FakeClock, host: SimulatedHost
) -> None:
    instance_id = running_instance(agent, cp)
    partition(agent, cp, clock, LEASE_S + 1)

    assert agent.check_isolation() is True
    assert agent.isolated
    assert power(host, instance_id) is PowerState.STOPPED
    assert agent.check_isolation() is False  # fenced once

    cp.reachable = True
    agent.heartbeat()
    assert not agent.isolated
    agent.sync()
    assert power(host, instance_id) is PowerState.RUNNING


def test_an_instance_evacuated_meanwhile_is_deleted_on_return(
    agent: Agent, cp: FakeControlPlane, clock: FakeClock, host: SimulatedHost
) -> None:
    instance_id = running_instance(agent, cp)
    partition(agent, cp, clock, LEASE_S + 1)
    agent.check_isolation()
    cp.unassign(instance_id)  # the control plane restarted it on another host

    cp.reachable = True
    agent.heartbeat()
    agent.sync()

    assert host.driver.get(instance_id) is None


def test_without_a_lease_the_agent_never_fences(
    agent: Agent, cp: FakeControlPlane, clock: FakeClock, host: SimulatedHost
) -> None:
    cp.fence_after_s = 0.0
    agent.heartbeat()
    instance_id = running_instance(agent, cp)
    partition(agent, cp, clock, 3600)
    assert agent.check_isolation() is False
    assert power(host, instance_id) is PowerState.RUNNING
