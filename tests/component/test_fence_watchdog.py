"""The host-side fence watchdog (``govcloud-fence``): when the agent process dies while its
VMs keep running, the watchdog destroys them once the lease the agent last refreshed is
older than its ``fence_after_s``, and keeps doing so until the lease is fresh again.

libvirt's ``test:///default`` keeps one state per process that every connection shares
(checked in ``test_default_test_driver_state_is_shared``), so an agent and a watchdog
with connections of their own see the same "host", as on a real hypervisor where both
talk to the same libvirtd. The agent is real (stand-in control plane); its death is simply
that nothing calls it any more. Clocks are fake: no test waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from pydantic import ValidationError

from agents.agent import Agent
from agents.config import AgentSettings
from agents.drivers.domainxml import DomainXmlOptions
from agents.drivers.libvirt import LibvirtDriver
from agents.lease import read_lease, write_lease
from agents.protocol.v1 import ActualState
from agents.watchdog import FenceWatchdog, build, run
from controlplane.domain.evacuation import EvacuationTiming
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    agent_settings,
    assignment,
)

URI = "test:///default"
LEASE_S = 30.0
FOREIGN = "not-govcloud-fence-test"


@pytest.fixture
def raw() -> Iterator[Any]:
    """A raw connection to the shared test host; removes the test's domains afterwards."""
    conn = libvirt.open(URI)
    before = {d.name() for d in conn.listAllDomains(0)}
    yield conn
    for dom in conn.listAllDomains(0):
        if dom.name() in before:
            continue
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    conn.close()


def _settings(tmp_path: Path, **overrides: Any) -> AgentSettings:
    return agent_settings(tmp_path / "agent", libvirt_uri=URI, domain_type="test", **overrides)


@pytest.fixture
def cp(clock: FakeClock) -> FakeControlPlane:
    plane = FakeControlPlane(clock=clock)
    plane.fence_after_s = LEASE_S
    return plane


def start_agent(tmp_path: Path, cp: FakeControlPlane, clock: FakeClock) -> Agent:
    """An agent process on the shared host (a new one after a "restart")."""
    driver = LibvirtDriver(URI, DomainXmlOptions(domain_type="test"))
    agent = Agent(_settings(tmp_path), driver, cp, clock=clock)
    agent.ensure_registered()
    agent.heartbeat()
    return agent


def define_running(raw: Any, name: str) -> None:
    """A running domain defined behind the agent's back."""
    xml = (
        f"<domain type='test'><name>{name}</name><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    raw.defineXML(xml).create()


def power(raw: Any, instance_id: str) -> int:
    return int(raw.lookupByName(f"gc-{instance_id}").state()[0])


def test_default_test_driver_state_is_shared(raw: Any) -> None:
    define_running(raw, FOREIGN)
    other = libvirt.open(URI)
    try:
        assert other.lookupByName(FOREIGN).isActive()
    finally:
        other.close()


def test_a_dead_agents_domains_are_destroyed_after_the_lease_until_it_returns(
    tmp_path: Path, raw: Any, cp: FakeControlPlane, clock: FakeClock
) -> None:
    agent = start_agent(tmp_path, cp, clock)
    ids = []
    for name in ("web-1", "web-2"):
        a = assignment(name)
        cp.assign(a)
        ids.append(a.instance_id)
    agent.sync(force=True)
    assert {cp.latest(i).state for i in ids} == {ActualState.RUNNING}  # type: ignore[union-attr]
    define_running(raw, FOREIGN)
    lease = read_lease(agent.settings.fence_lease_path)
    assert lease is not None
    assert lease.fence_after_s == LEASE_S
    assert lease.host == "sim-host-1"

    settings = _settings(tmp_path)
    watchdog = build(settings, monotonic=clock.monotonic)  # the agent's fake time
    assert watchdog.check().stale is False

    # The agent process dies: nothing refreshes the lease any more; its VMs keep running.
    agent.driver.close()
    clock.advance(LEASE_S - 1)
    assert watchdog.check().destroyed == []
    assert {power(raw, i) for i in ids} == {libvirt.VIR_DOMAIN_RUNNING}

    clock.advance(2)
    fenced = watchdog.check()
    assert fenced.stale is True
    assert sorted(fenced.destroyed) == sorted(ids)
    assert {power(raw, i) for i in ids} == {libvirt.VIR_DOMAIN_SHUTOFF}
    assert all(raw.lookupByName(f"gc-{i}").isPersistent() for i in ids)  # not undefined
    assert raw.lookupByName(FOREIGN).isActive()  # not ours: untouched

    # Something starts a copy again (libvirt autostart, an operator): destroyed again.
    raw.lookupByName(f"gc-{ids[0]}").create()
    clock.advance(1)
    assert watchdog.check().destroyed == [ids[0]]

    # The agent restarts: a fresh lease stops the fencing and the agent starts what is
    # still assigned here.
    clock.advance(1)
    back = start_agent(tmp_path, cp, clock)
    assert watchdog.check().stale is False
    back.sync(force=True)
    assert {power(raw, i) for i in ids} == {libvirt.VIR_DOMAIN_RUNNING}
    clock.advance(1)
    assert watchdog.check().destroyed == []
    assert watchdog.fencing is False


def test_a_zero_lease_never_fences(tmp_path: Path, raw: Any) -> None:
    path = tmp_path / "lease.json"
    write_lease(path, "h1", 0.0, wall=lambda: 0.0)  # written "long ago"
    define_running(raw, "gc-zero-lease")
    watchdog = FenceWatchdog(path, lambda: LibvirtDriver(URI))
    result = watchdog.check()
    assert result.stale is False
    assert raw.lookupByName("gc-zero-lease").isActive()


def test_no_lease_no_fencing_and_an_old_lease_found_at_start_fences(
    tmp_path: Path, raw: Any
) -> None:
    path = tmp_path / "lease.json"
    watchdog = FenceWatchdog(path, lambda: LibvirtDriver(URI))
    assert watchdog.check().age_s is None  # the agent never got an ack: nothing to guard

    define_running(raw, "gc-old-lease")
    write_lease(path, "h1", LEASE_S, wall=lambda: time.time() - 100)
    result = watchdog.check()
    assert result.stale is True
    assert result.destroyed == ["old-lease"]


def test_a_wall_clock_step_does_not_fence_a_healthy_host(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    wall, mono = [1000.0], [50.0]
    write_lease(path, "h1", LEASE_S, wall=lambda: wall[0])
    calls: list[str] = []

    def driver() -> Any:
        calls.append("connect")
        raise AssertionError("must not fence")

    watchdog = FenceWatchdog(path, driver, wall=lambda: wall[0], monotonic=lambda: mono[0])
    assert watchdog.check().stale is False
    for _ in range(5):  # heartbeats every 10 s while NTP steps the wall clock by a day
        wall[0] += 86400
        mono[0] += 10
        write_lease(path, "h1", LEASE_S, wall=lambda: wall[0])
        assert watchdog.check().stale is False
    assert calls == []


def test_an_unreadable_lease_keeps_ageing(tmp_path: Path) -> None:
    path = tmp_path / "lease.json"
    mono = [0.0]
    write_lease(path, "h1", LEASE_S)
    watchdog = FenceWatchdog(path, None, monotonic=lambda: mono[0])
    watchdog.check()
    path.write_text("{half a lea")
    mono[0] += LEASE_S + 1
    assert watchdog.check().stale is True  # simulated host: nothing to connect to
    path.unlink()
    assert watchdog.check().stale is True


def test_the_check_interval_must_fit_in_the_evacuation_margin(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="fence_check_interval_s"):
        _settings(tmp_path, fence_check_interval_s=6)
    assert _settings(tmp_path, fence_check_interval_s=5).fence_check_interval_s == 5
    with pytest.raises(ValidationError, match="fence watchdog"):
        EvacuationTiming(fence_after_s=30, margin_s=5, down_after_s=12)
    assert _settings(tmp_path).fence_lease_path == tmp_path / "agent" / "fence-lease.json"


def test_govcloud_fence_once(tmp_path: Path, raw: Any) -> None:
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(
        json.dumps(
            {
                "control_plane_url": "http://cp.invalid",
                "name": "h1",
                "capacity": {"vcpus": 2, "ram_mib": 2048},
                "libvirt_uri": URI,
                "domain_type": "test",
                "state_dir": str(state),
            }
        )
    )
    assert run(["--config", str(config), "--once"]) == 0  # no lease yet
    write_lease(state / "fence-lease.json", "h1", LEASE_S, wall=lambda: time.time() - 60)
    define_running(raw, "gc-cli-fence")
    assert run(["--config", str(config), "--once"]) == 1  # stale: fenced
    assert not raw.lookupByName("gc-cli-fence").isActive()
    config.write_text("name: [")
    assert run(["--config", str(config), "--once"]) == 2
