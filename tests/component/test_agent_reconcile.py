"""The agent reconciling a real libvirt test-driver host to its assignments.

libvirt is real (the test driver on a generated ``host.xml``). The control plane is the
in-memory :class:`FakeControlPlane` from ``agent_harness`` -- a stand-in implementing the
``ControlPlane`` protocol the Agent depends on; tests of the agent against the real API
belong to the control plane's component tests. Time is a :class:`FakeClock` except in the
one test that runs the real loop threads.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.agent import Agent, AgentConfigError, CredentialStore
from agents.drivers.base import InstanceMetadata, PowerState
from agents.drivers.hostxml import ForeignDomain
from agents.protocol.v1 import ActualState, DesiredState, ImageSpec
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    RecordingDriver,
    SimulatedHost,
    agent_settings,
    assignment,
    simulated_host,
)

#: A format the protocol refuses, passed unvalidated to test the driver's own check.
VMDK: Any = "vmdk"

RUNNING, SHUTOFF = 1, 5


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SimulatedHost]:
    sim = simulated_host(
        tmp_path / "host",
        foreign=(ForeignDomain("legacy-db"), ForeignDomain("old-app", running=False)),
    )
    yield sim
    sim.driver.close()


@pytest.fixture
def cp(clock: FakeClock) -> FakeControlPlane:
    return FakeControlPlane(clock=clock)


@pytest.fixture
def driver(host: SimulatedHost) -> RecordingDriver:
    return RecordingDriver(host.driver)


@pytest.fixture
def make_agent(
    tmp_path: Path, cp: FakeControlPlane, clock: FakeClock, driver: RecordingDriver
) -> Callable[..., Agent]:
    """``make_agent(**settings)``: a new agent on the same host and state dir."""

    def make(**overrides: object) -> Agent:
        return Agent(agent_settings(tmp_path / "agent", **overrides), driver, cp, clock=clock)

    return make


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent()


def state_of(cp: FakeControlPlane, instance_id: str) -> ActualState:
    status = cp.latest(instance_id)
    assert status is not None, f"nothing reported for {instance_id}"
    return status.state


# -- registration --------------------------------------------------------------------------


def test_registers_once_and_stores_the_credential_privately(
    agent: Agent, cp: FakeControlPlane, make_agent: Callable[..., Agent], host: SimulatedHost
) -> None:
    credential = agent.ensure_registered()
    assert credential.host_id == cp.host_id
    [request] = cp.registrations
    assert request.name == "sim-host-1"
    assert request.libvirt_uri == host.uri
    assert request.capacity.vcpus == 8

    path = agent.settings.credential_path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["host_id"] == cp.host_id

    again = make_agent()  # a restarted agent: the token is spent, the file is reused
    assert again.ensure_registered() == credential
    assert len(cp.registrations) == 1
    assert cp.secret not in repr(credential)


def test_without_credential_or_token_it_says_what_to_do(
    make_agent: Callable[..., Agent],
) -> None:
    agent = make_agent(bootstrap_token=None)
    with pytest.raises(AgentConfigError, match="GOVCLOUD_AGENT_BOOTSTRAP_TOKEN"):
        agent.ensure_registered()


def test_unreadable_credential_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "credential.json"
    path.write_text("{not json")
    with pytest.raises(AgentConfigError, match="unreadable"):
        CredentialStore(path).load()


def test_heartbeat_reports_capacity_and_managed_domains(agent: Agent, cp: FakeControlPlane) -> None:
    cp.assign(assignment("a"), assignment("b"))
    agent.sync()
    cp.heartbeat_interval_s = 4.0
    ack = agent.heartbeat()
    assert ack.host_state == "active"
    assert cp.heartbeats[-1].domains == 2  # the two foreign domains don't count
    assert cp.heartbeats[-1].capacity.ram_mib == 16384
    assert agent.heartbeat_interval_s == 4.0


# -- define / start / stop / reboot / delete ----------------------------------------------


def test_new_assignments_are_defined_and_reported(
    agent: Agent, cp: FakeControlPlane, host: SimulatedHost
) -> None:
    up = assignment("up")
    down = assignment("down", desired=DesiredState.STOPPED)
    cp.assign(up, down)
    report = agent.sync()
    assert report is not None
    assert state_of(cp, up.instance_id) is ActualState.RUNNING
    assert state_of(cp, down.instance_id) is ActualState.STOPPED
    assert host.raw_state(f"gc-{up.instance_id}") == RUNNING
    assert host.raw_state(f"gc-{down.instance_id}") == SHUTOFF
    assert agent.generation == cp.generation
    assert cp.current(up.instance_id).create is False  # the control plane saw it exist


def test_power_changes_converge(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver
) -> None:
    a = assignment()
    cp.assign(a)
    agent.sync()
    cp.update(a.instance_id, desired=DesiredState.STOPPED)
    agent.sync()
    assert state_of(cp, a.instance_id) is ActualState.STOPPED
    cp.update(a.instance_id, desired=DesiredState.RUNNING)
    agent.sync()
    assert state_of(cp, a.instance_id) is ActualState.RUNNING
    assert driver.actions() == ["define+start", "stop", "start"]


def test_reboot_happens_once_per_sequence_number(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver, clock: FakeClock
) -> None:
    a = assignment()
    cp.assign(a)
    agent.sync()
    cp.update(a.instance_id, reboot_seq=1)
    agent.sync()
    status = cp.latest(a.instance_id)
    assert status is not None
    assert (status.state, status.reboot_seq) == (ActualState.RUNNING, 1)
    assert driver.read_metadata(a.instance_id).reboot_seq == 1

    clock.advance(agent.settings.resync_interval_s)
    assert agent.sync() is not None  # a resync pass...
    assert driver.actions().count("reboot") == 1  # ...does not reboot again


def test_reboot_requested_while_stopped_is_not_replayed_at_start(
    agent: Agent, cp: FakeControlPlane, driver: RecordingDriver
) -> None:
    a = assignment(desired=DesiredState.STOPPED)
    cp.assign(a)
    agent.sync()
    cp.update(a.instance_id, reboot_seq=2)
    agent.sync()
    cp.update(a.instance_id, desired=DesiredState.RUNNING)
    agent.sync()
    assert "reboot" not in driver.actions()
    status = cp.latest(a.instance_id)
    assert status is not None
    assert (status.state, status.reboot_seq) == (ActualState.RUNNING, 2)


def test_deleted_is_destroyed_undefined_and_reported_absent(
    agent: Agent, cp: FakeControlPlane, host: SimulatedHost
) -> None:
    a = assignment()
    cp.assign(a)
    agent.sync()
    cp.update(a.instance_id, desired=DesiredState.DELETED)
    agent.sync()
    assert state_of(cp, a.instance_id) is ActualState.ABSENT
    assert f"gc-{a.instance_id}" not in host.domain_names()
    agent.sync(force=True)  # deleting what is gone is fine
    assert state_of(cp, a.instance_id) is ActualState.ABSENT


# -- fencing, vanished domains, foreign domains --------------------------------------------


def test_unassigned_gc_domains_are_fenced_and_foreign_ones_untouched(
    agent: Agent, cp: FakeControlPlane, host: SimulatedHost
) -> None:
    keep, moved = assignment("keep"), assignment("moved")
    cp.assign(keep, moved)
    agent.sync()
    cp.unassign(moved.instance_id)  # rebuilt elsewhere while this host was away
    agent.sync()
    assert f"gc-{moved.instance_id}" not in host.domain_names()
    assert f"gc-{keep.instance_id}" in host.domain_names()
    assert host.raw_state("legacy-db") == RUNNING
    assert host.raw_state("old-app") == SHUTOFF
    assert [s.instance_id for s in agent.last_report.instances] == [keep.instance_id]  # type: ignore[union-attr]


def test_domain_deleted_behind_the_agents_back_is_absent_not_recreated(
    agent: Agent, cp: FakeControlPlane, host: SimulatedHost, clock: FakeClock
) -> None:
    a = assignment()
    cp.assign(a)
    agent.sync()
    raw = host.raw_domain(f"gc-{a.instance_id}")  # an operator's `virsh undefine`
    raw.destroy()
    raw.undefine()

    assert agent.sync(wait_s=0) is None  # nothing changed and no resync due yet
    clock.advance(agent.settings.resync_interval_s)
    assert agent.sync(wait_s=0) is not None  # the periodic resync notices
    status = cp.latest(a.instance_id)
    assert status is not None
    assert status.state is ActualState.ABSENT
    assert "not recreated" in status.message
    assert f"gc-{a.instance_id}" not in host.domain_names()


def test_the_long_poll_waits_only_until_the_next_resync(
    agent: Agent, cp: FakeControlPlane, clock: FakeClock
) -> None:
    agent.sync()
    passes = agent.passes
    clock.advance(20)
    assert agent.sync() is not None  # the poll waited the 10 s left, then resynced
    generation, waited = cp.polls[-1]
    assert (generation, waited) == (cp.generation, 10.0)
    assert agent.passes == passes + 1


# -- restart and adoption ------------------------------------------------------------------


def test_restarted_agent_adopts_domains_without_touching_them(
    agent: Agent,
    cp: FakeControlPlane,
    driver: RecordingDriver,
    make_agent: Callable[..., Agent],
    host: SimulatedHost,
) -> None:
    # "Restart" = a new Agent (fresh memory, credential re-read from disk) over the same
    # libvirt connection, which stands for the libvirtd that kept running; see the harness.
    up = assignment("up", reboot_seq=4)
    down = assignment("down", desired=DesiredState.STOPPED)
    cp.assign(up, down)
    agent.sync()
    driver.write_metadata(InstanceMetadata(up.instance_id, "up", 4))
    driver.calls.clear()
    before = host.raw_domain(f"gc-{up.instance_id}").ID()  # changes if it were restarted

    restarted = make_agent()
    report = restarted.run_once()

    assert driver.actions() == []  # no define, start, stop or reboot
    assert host.raw_domain(f"gc-{up.instance_id}").ID() == before
    assert sorted(s.state for s in report.instances) == [ActualState.RUNNING, ActualState.STOPPED]
    assert {s.reboot_seq for s in report.instances if s.instance_id == up.instance_id} == {4}
    assert len(cp.registrations) == 1
    assert sum(name.startswith("gc-") for name in host.domain_names()) == 2


def test_restart_with_create_still_set_does_not_duplicate(
    cp: FakeControlPlane, make_agent: Callable[..., Agent], driver: RecordingDriver
) -> None:
    # The agent died after defining but before reporting: create is still True.
    a = assignment()
    driver.define(a, start=True)
    cp.assign(a)
    driver.calls.clear()
    make_agent().run_once()
    assert driver.actions() == []
    assert [d.instance_id for d in driver.list_domains()] == [a.instance_id]
    assert state_of(cp, a.instance_id) is ActualState.RUNNING


# -- failures ------------------------------------------------------------------------------


def test_one_broken_instance_does_not_stop_the_others(agent: Agent, cp: FakeControlPlane) -> None:
    broken = assignment(
        "broken", image=ImageSpec.model_construct(name="odd", format=VMDK, path="/i/o.vmdk")
    )
    fine = assignment("fine")
    cp.assign(broken, fine)
    agent.sync()
    status = cp.latest(broken.instance_id)
    assert status is not None
    assert status.state is ActualState.ERROR
    assert "vmdk" in status.message
    assert state_of(cp, fine.instance_id) is ActualState.RUNNING


def test_a_failed_report_is_retried_at_once(
    agent: Agent, cp: FakeControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.client import ControlPlaneUnavailable

    a = assignment()
    cp.assign(a)
    real_report = cp.report_status

    def failing(*_args: object) -> None:
        raise ControlPlaneUnavailable("down")

    monkeypatch.setattr(cp, "report_status", failing)
    with pytest.raises(ControlPlaneUnavailable):
        agent.sync()
    monkeypatch.setattr(cp, "report_status", real_report)
    agent.sync()
    assert cp.polls[-1][1] == 0  # generation unchanged on our side: no waiting
    assert state_of(cp, a.instance_id) is ActualState.RUNNING


# -- the real loops ------------------------------------------------------------------------


def test_loops_register_heartbeat_reconcile_and_stop(tmp_path: Path, host: SimulatedHost) -> None:
    cp = FakeControlPlane()  # real blocking long-polls
    settings = agent_settings(tmp_path / "loop", poll_wait_s=0.05, resync_interval_s=0.2)
    cp.heartbeat_interval_s = 0.05
    agent = Agent(settings, host.driver, cp)  # real clock and threads
    a = assignment()
    cp.assign(a)
    with agent.running():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            cp.latest(a.instance_id) is None or len(cp.heartbeats) < 2
        ):
            time.sleep(0.01)
        cp.update(a.instance_id, desired=DesiredState.STOPPED)
        while (
            time.monotonic() < deadline and state_of(cp, a.instance_id) is not ActualState.STOPPED
        ):
            time.sleep(0.01)
    assert state_of(cp, a.instance_id) is ActualState.STOPPED
    assert len(cp.heartbeats) >= 2
    assert host.driver.get(a.instance_id).state is PowerState.STOPPED  # type: ignore[union-attr]
    assert not [t for t in threading.enumerate() if t.name.startswith("govcloud-agent-")]


# -- wiring (agents.main) --------------------------------------------------------------------


def test_build_driver_generates_the_simulated_host(tmp_path: Path) -> None:
    from agents.main import build_driver

    settings = agent_settings(tmp_path / "wired", capacity={"vcpus": 3, "ram_mib": 3072})
    driver = build_driver(settings)
    try:
        assert driver.uri == f"test://{tmp_path / 'wired' / 'host.xml'}"
        assert driver.connection.getInfo()[1:3] == [3072, 3]
        assert driver.options.domain_type == "test"
        assert driver.options.serial_dir == tmp_path / "wired" / "serial"
        assert stat.S_IMODE(os.stat(tmp_path / "wired").st_mode) == 0o700
    finally:
        driver.close()


def test_cli_rejects_a_missing_config_file(tmp_path: Path) -> None:
    from agents.main import run

    assert run(["--config", str(tmp_path / "nope.yaml"), "--once"]) == 2
