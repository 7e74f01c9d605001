"""Host failure end to end, in-process: the real API (SQLite, fake clock) and two real
agents on libvirt test-driver hosts, talking HTTP through the app's test client.

A network partition cuts host 1 off: the control plane marks it DOWN, the agent powers
its domain off when its lease runs out, the control plane evacuates the instance to host
2 after lease + margin, and when the partition heals host 1's agent deletes its stale
copy. At every step at most one copy of the instance runs. The partition is the only
fake: a wrapper that makes the agent's calls fail while it is set.

When host 1's agent *process* dies instead (its VM keeps running), the host-side fence
watchdog (``govcloud-fence``, with its own libvirt connection) destroys the VM once the
lease runs out, before the evacuation starts it on host 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.agent import Agent
from agents.client import ControlPlaneError, HttpControlPlane
from agents.drivers.base import PowerState
from agents.drivers.domainxml import DomainXmlOptions
from agents.drivers.libvirt import LibvirtDriver
from agents.watchdog import build
from tests.api_helper import Api
from tests.component.agent_harness import (
    FakeClock,
    SimulatedHost,
    agent_settings,
    simulated_host,
)


class Partitionable:
    """The agent's control plane, unreachable while ``cut`` is set."""

    def __init__(self, inner: HttpControlPlane) -> None:
        self.inner = inner
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.cut:
                raise ControlPlaneError("network partition: control plane unreachable")
            return method(*args, **kwargs)

        return call


class Node:
    """One simulated host with its agent, its own monotonic clock and a cuttable link."""

    def __init__(self, api: Api, tmp: Path, name: str) -> None:
        self.host: SimulatedHost = simulated_host(tmp / name)
        self.clock = FakeClock()
        self.link = Partitionable(HttpControlPlane(http_client=api.client))
        settings = agent_settings(
            tmp / f"{name}-agent",
            name=name,
            bootstrap_token=api.bootstrap_token(),
            capacity={"vcpus": 8, "ram_mib": 16384, "disk_gib": 200},
        )
        self.agent = Agent(settings, self.host.driver, self.link, clock=self.clock)
        self.agent.ensure_registered()
        self.agent.heartbeat()

    def copy(self, instance_id: str) -> PowerState | None:
        domain = self.host.driver.get(instance_id)
        return None if domain is None else domain.state


@pytest.fixture
def api(sqlite_seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    made = api_factory(sqlite_seeded_url, migrate=False)
    made.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "restart-elsewhere"}, expect=200)
    return made


@pytest.fixture
def nodes(api: Api, tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.host.driver.close()


def test_partitioned_host_fences_is_evacuated_and_deletes_its_stale_copy(
    api: Api, nodes: list[Node], tmp_path: Path
) -> None:
    one = Node(api, tmp_path, "tpe1-h01")
    nodes.append(one)
    instance_id = api.create_instance("web-1")["id"]
    one.agent.sync(force=True)
    assert one.copy(instance_id) is PowerState.RUNNING
    two = Node(api, tmp_path, "tpe1-h02")
    nodes.append(two)

    def running_copies() -> int:
        return sum(node.copy(instance_id) is PowerState.RUNNING for node in nodes)

    one.link.cut = True
    for _ in range(50):  # 50 s of partition, one second at a time
        api.clock.advance(timedelta(seconds=1))
        for node in nodes:
            node.clock.advance(1)
        try:
            one.agent.heartbeat()
        except ControlPlaneError:
            one.agent.check_isolation()
        two.agent.heartbeat()
        api.app.state.liveness.run_once()
        api.place_pending()
        two.agent.sync(force=True)
        assert running_copies() <= 1

    assert one.agent.isolated
    assert one.copy(instance_id) is PowerState.STOPPED  # fenced at the 30 s lease
    assert two.copy(instance_id) is PowerState.RUNNING  # evacuated after 45 s
    assert api.instance(instance_id)["state"] == "RUNNING"
    assert api.instance(instance_id)["host_name"] == "tpe1-h02"

    one.link.cut = False
    one.agent.heartbeat()
    one.agent.sync(force=True)

    assert one.copy(instance_id) is None  # the stale copy is gone
    assert running_copies() == 1
    assert {h["name"]: h["state"] for h in api.hosts()} == {
        "tpe1-h01": "active",
        "tpe1-h02": "active",
    }
    assert api.instance(instance_id)["host_name"] == "tpe1-h02"


class SharedDriverNode:
    """A host on libvirt's ``test:///default``, whose state every connection in this
    process shares (as every process on a real host shares its libvirtd): the agent and
    the fence watchdog have connections of their own. Its agent can be killed and
    restarted."""

    URI = "test:///default"

    def __init__(self, api: Api, tmp: Path, name: str) -> None:
        self.clock = FakeClock()
        self.settings = agent_settings(
            tmp / f"{name}-agent",
            name=name,
            bootstrap_token=api.bootstrap_token(),
            capacity={"vcpus": 8, "ram_mib": 16384, "disk_gib": 200},
            libvirt_uri=self.URI,
            domain_type="test",
        )
        self.api = api
        self.observer = LibvirtDriver(self.URI)
        self.agent: Agent | None = None
        self.start_agent()

    def start_agent(self) -> Agent:
        driver = LibvirtDriver(self.URI, DomainXmlOptions(domain_type="test"))
        link = HttpControlPlane(http_client=self.api.client)
        self.agent = Agent(self.settings, driver, link, clock=self.clock)
        self.agent.ensure_registered()
        self.agent.heartbeat()
        return self.agent

    def kill_agent(self) -> None:
        """The agent process dies; the domains it started keep running."""
        assert self.agent is not None
        self.agent.driver.close()
        self.agent = None

    def copy(self, instance_id: str) -> PowerState | None:
        domain = self.observer.get(instance_id)
        return None if domain is None else domain.state


def test_a_dead_agents_vm_is_destroyed_by_the_fence_watchdog_before_evacuation(
    api: Api, nodes: list[Node], tmp_path: Path
) -> None:
    one = SharedDriverNode(api, tmp_path, "tpe1-h01")
    instance_id = api.create_instance("web-1")["id"]
    assert one.agent is not None
    one.agent.sync(force=True)
    try:
        assert one.copy(instance_id) is PowerState.RUNNING
        two = Node(api, tmp_path, "tpe1-h02")
        nodes.append(two)
        watchdog = build(one.settings, monotonic=one.clock.monotonic)
        assert watchdog.check().stale is False

        def running_copies() -> int:
            return (one.copy(instance_id) is PowerState.RUNNING) + (
                two.copy(instance_id) is PowerState.RUNNING
            )

        one.kill_agent()  # host up, agent dead, VM running: nothing in the agent can fence
        fenced_at = evacuated_at = None
        for second in range(1, 51):
            api.clock.advance(timedelta(seconds=1))
            one.clock.advance(1)
            two.clock.advance(1)
            two.agent.heartbeat()
            if watchdog.check().destroyed:
                fenced_at = fenced_at or second
            api.app.state.liveness.run_once()
            api.place_pending()
            two.agent.sync(force=True)
            if two.copy(instance_id) is PowerState.RUNNING:
                evacuated_at = evacuated_at or second
            assert running_copies() <= 1

        assert fenced_at is not None
        assert evacuated_at is not None
        assert fenced_at < evacuated_at  # destroyed at the 30 s lease, restarted after 45 s
        assert one.copy(instance_id) is PowerState.STOPPED  # destroyed, still defined
        assert api.instance(instance_id)["host_name"] == "tpe1-h02"

        # The agent is restarted: a fresh lease ends the fencing, and its reconcile deletes
        # the copy that now lives on host 2.
        back = one.start_agent()
        assert watchdog.check().stale is False
        back.sync(force=True)
        assert one.copy(instance_id) is None
        assert running_copies() == 1
    finally:
        for domain in one.observer.list_domains():  # leave the shared test host clean
            one.observer.delete(domain.instance_id)
        one.observer.close()
