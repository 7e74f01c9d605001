"""Migration and drain end to end, in-process: the real API (SQLite, fake clock) and real
agents (``agents.main.build_agent``) on libvirt test-driver hosts, talking HTTP through
the app's test client.

On the test driver each host's state is private, so a live migration is a move with the
same observable states: the source pauses its copy, the target defines and starts it,
the control plane switches the instance and releases the source claim, and the source
agent removes its copy. At no step do two running copies exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.agent import Agent
from agents.drivers.base import PowerState
from agents.main import build_agent
from tests.api_helper import Api
from tests.component.agent_harness import SimulatedHost, agent_settings, simulated_host


class Node:
    """A simulated host and its real agent."""

    def __init__(self, api: Api, tmp: Path, name: str, dc: str = "tpe-1") -> None:
        self.name = name
        self.host: SimulatedHost = simulated_host(tmp / name)
        settings = agent_settings(
            tmp / f"{name}-agent",
            name=name,
            bootstrap_token=api.bootstrap_token(dc),
            capacity={"vcpus": 8, "ram_mib": 16384, "disk_gib": 200},
        )
        self.agent: Agent = build_agent(settings, http_client=api.client, driver=self.host.driver)
        self.agent.ensure_registered()
        self.agent.heartbeat()

    def copy(self, instance_id: str) -> PowerState | None:
        domain = self.host.driver.get(instance_id)
        return None if domain is None else domain.state


@pytest.fixture
def api(sqlite_seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    return api_factory(sqlite_seeded_url, migrate=False)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.host.driver.close()


def running_copies(nodes: list[Node], instance_id: str) -> int:
    return sum(node.copy(instance_id) is PowerState.RUNNING for node in nodes)


def step(api: Api, nodes: list[Node], ids: list[str], rounds: int = 8) -> None:
    """Agent passes and drain-loop passes, checking the no-two-copies rule after each."""
    for _ in range(rounds):
        for node in nodes:
            node.agent.sync(force=True)
            for iid in ids:
                assert running_copies(nodes, iid) <= 1
        api.app.state.drains.run_once()


def test_live_migration_on_the_test_driver_never_runs_two_copies(
    api: Api, nodes: list[Node], tmp_path: Path
) -> None:
    one = Node(api, tmp_path, "tpe1-h01")
    nodes.append(one)
    iid = api.create_instance("web-1")["id"]
    one.agent.sync(force=True)
    assert api.instance(iid)["state"] == "RUNNING"
    two = Node(api, tmp_path, "tpe1-h02")
    nodes.append(two)

    mig = api.post(f"/v1/instances/{iid}/migrate", json={}, expect=202).json()
    assert mig["target_host"] == "tpe1-h02"
    two.agent.sync(force=True)  # before the handoff the target creates nothing
    assert two.copy(iid) is None
    one.agent.sync(force=True)  # pauses its copy, reports ready
    assert one.copy(iid) is PowerState.PAUSED
    assert running_copies(nodes, iid) == 0
    two.agent.sync(force=True)  # handoff: defines and starts it
    assert two.copy(iid) is PowerState.RUNNING
    moved = api.instance(iid)
    assert (moved["state"], moved["host_name"]) == ("RUNNING", "tpe1-h02")
    one.agent.sync(force=True)  # no longer assigned there: fenced
    assert one.copy(iid) is None
    assert api.get(f"/v1/migrations/{mig['id']}", expect=200).json()["phase"] == "done"


def test_drain_with_real_agents_empties_the_host(
    api: Api, nodes: list[Node], tmp_path: Path
) -> None:
    one = Node(api, tmp_path, "tpe1-h01")
    nodes.append(one)
    ids = [api.create_instance(f"vm-{i}")["id"] for i in range(3)]
    api.act(ids[2], "stop")
    one.agent.sync(force=True)
    one.agent.sync(force=True)
    assert [api.instance(i)["state"] for i in ids] == ["RUNNING", "RUNNING", "STOPPED"]
    nodes.extend([Node(api, tmp_path, "tpe1-h02"), Node(api, tmp_path, "tpe1-h03")])

    drain = api.post("/v1/hosts/tpe1-h01/drain", json={"max_parallel": 2}, expect=202).json()
    step(api, nodes, ids)
    final = api.get(f"/v1/drains/{drain['id']}", expect=200).json()
    assert final["state"] == "done"
    assert final["migrated"] == 3
    assert one.host.driver.list_domains() == []
    states = {api.instance(i)["state"] for i in ids[:2]}
    assert states == {"RUNNING"}
    assert api.instance(ids[2])["state"] == "STOPPED"
    for iid in ids:
        holder = next(n for n in nodes if n.name == api.instance(iid)["host_name"])
        assert holder.copy(iid) in (PowerState.RUNNING, PowerState.STOPPED)
