"""A scenario run end to end, in-process: the real API (SQLite, fake clock), real agents
(``agents.main.build_agent``) on libvirt test-driver hosts, and their usage reporters
emitting the scenario's synthetic load (data from the control plane, evaluated by
``agents.drivers.behaviour``) on a fake agent clock. The run provisions two groups (one
under an anti-affinity server group), measures them and removes everything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.agent import Agent
from agents.drivers.behaviour import LibvirtUsage, SyntheticUsage
from agents.main import build_agent
from agents.usage import UsageReporter, build_reporter
from controlplane.api.routes.lab import policy_of
from controlplane.reconciler.lab import LabLoop
from tests.api_helper import Api
from tests.component.agent_harness import FakeClock, SimulatedHost, agent_settings, simulated_host

IID = "6f1c2a7e-0000-4000-8000-000000000001"
SCENARIO: dict[str, Any] = {
    "name": "food-peak",
    "duration_s": 40,
    "sample_interval_s": 10,
    "groups": [
        {
            "name": "web",
            "flavor": "m1.small",
            "image": "cirros",
            "count": 2,
            "server_group": "anti-affinity",
            "load": {
                "cpu": {"shape": "ramp", "low": 0.2, "high": 0.6, "period_s": 40},
                "ram": {"shape": "constant", "high": 0.5},
            },
        },
        {
            "name": "db",
            "flavor": "m1.medium",
            "image": "cirros",
            "count": 1,
            "load": {"cpu": {"shape": "square", "low": 0.1, "high": 0.9, "period_s": 20}},
        },
    ],
}


class Node:
    """A simulated host, its real agent and its usage reporter (all on one fake clock)."""

    def __init__(self, api: Api, tmp: Path, name: str, clock: FakeClock) -> None:
        self.host: SimulatedHost = simulated_host(tmp / name)
        settings = agent_settings(
            tmp / f"{name}-agent",
            name=name,
            bootstrap_token=api.bootstrap_token("tpe-1"),
            capacity={"vcpus": 8, "ram_mib": 16384, "disk_gib": 200},
        )
        self.agent: Agent = build_agent(settings, http_client=api.client, driver=self.host.driver)
        self.agent.clock = clock
        self.agent.ensure_registered()
        self.agent.heartbeat()
        self.usage: UsageReporter = build_reporter(self.agent, self.host.driver)


@pytest.fixture
def api(sqlite_seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    return api_factory(sqlite_seeded_url, migrate=False)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.host.driver.close()


def test_scenario_run_with_real_agents_and_synthetic_load(
    api: Api, nodes: list[Node], tmp_path: Path
) -> None:
    clock = FakeClock()
    nodes.extend(Node(api, tmp_path, f"lab-h0{i}", clock) for i in (1, 2))
    assert all(isinstance(n.usage.source, SyntheticUsage) for n in nodes)
    api.create_org("moe", "gov")
    api.post("/v1/lab/vendors", json={"code": "cht", "name": "Chunghwa Telecom"}, expect=201)
    operator = api.create_user("lab-op", "lab-operator", "openlab")
    cht = api.create_user("cht-alice", "member", "cht")
    trial = api.post(
        "/v1/lab/trials",
        json={"name": "food-poc", "vendor": "cht", "ministry": "moe", "template": "poc-small"},
        token=cht,
        expect=201,
    ).json()["id"]
    api.post(f"/v1/lab/trials/{trial}/approve", json={}, token=operator, expect=200)
    loop = LabLoop(api.store, policy_of(api.settings), 60, clock=api.clock)
    loop.run_once()

    run = api.post(f"/v1/lab/trials/{trial}/runs", json=SCENARIO, token=cht, expect=201).json()

    def step(seconds: float = 0.0) -> dict[str, Any]:
        for node in nodes:
            node.agent.sync(force=True)
            node.usage.report_once()
        clock.advance(seconds)
        api.clock.advance(timedelta(seconds=seconds))
        loop.advance_runs()
        body: dict[str, Any] = api.get(f"/v1/lab/runs/{run['id']}", token=cht, expect=200).json()
        return body

    assert step()["state"] == "loading"
    # anti-affinity: the two web VMs run on different simulated hosts
    per_host = [len(n.host.driver.list_domains()) for n in nodes]
    assert sorted(per_host) == [1, 2]
    for _ in range(4):  # samples at 0, 10, 20 and 30 s of load; at 40 s the load ends
        state = step(10)
    assert state["state"] == "cleaning"
    groups = {g["group"]: g for g in state["groups"]}
    web, db = groups["web"], groups["db"]
    assert (web["running"], db["running"], web["failed"]) == (2, 1, 0)
    # ramp 0.2 -> 0.6 over 40 s, sampled at 0, 10, 20 and 30 s on each web VM
    assert web["cpu"]["peak"] == pytest.approx(0.5)
    assert web["cpu"]["mean"] == pytest.approx(0.35)
    assert web["ram"] == {"peak": 0.5, "p95": 0.5, "mean": 0.5, "samples": 8}
    # square wave, period 20 s, half high: high at 0 and 20 s, low at 10 and 30 s
    assert (db["cpu"]["peak"], db["cpu"]["mean"]) == pytest.approx((0.9, 0.5))
    assert {n.usage.reports for n in nodes} == {5}

    final = step()
    assert (final["state"], final["live"]) == ("completed", 0)
    assert [n.host.driver.list_domains() for n in nodes] == [[], []]
    assert api.get("/v1/server-groups", expect=200).json() == []


def test_real_hosts_measure_libvirt_statistics(tmp_path: Path) -> None:
    """On a non-test URI the reporter reads domain statistics; CPU is a rate, so the first
    look gives no sample and the second gives cpu_time used over wall time and vCPUs."""

    class Dom:
        def __init__(self) -> None:
            self.cpu_time = 0

        def info(self) -> list[int]:
            return [1, 1048576, 1048576, 2, self.cpu_time]

        def memoryStats(self) -> dict[str, int]:  # noqa: N802 (libvirt's name)
            return {"available": 1048576, "unused": 262144}

        def blockInfo(self, dev: str) -> tuple[int, int, int]:  # noqa: N802
            if dev != "vda":
                raise LookupError(dev)
            return (100, 25, 100)

    dom = Dom()

    class Conn:
        def lookupByName(self, name: str) -> Dom:  # noqa: N802
            assert name == f"gc-{IID}"
            return dom

    from agents.protocol.v1 import LoadProfile

    source = LibvirtUsage(lambda: Conn())
    assert source.sample(IID, LoadProfile(), 0.0, 100.0) is None
    dom.cpu_time = 5 * 10**9  # 5 s of CPU in 10 s on 2 vCPUs: 25 %
    sample = source.sample(IID, LoadProfile(), 10.0, 110.0)
    assert sample is not None
    assert (sample.cpu, sample.ram, sample.disk, sample.source) == (0.25, 0.75, 0.25, "libvirt")
