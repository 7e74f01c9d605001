"""What the agent endpoints add to keep a large fleet's traffic small (SQLite and PostgreSQL).

* ``POST .../status?assignments=true`` answers a report that changed something with the
  host's assignments afterwards (200), so the agent needs no second long-poll round trip;
  a report that changed nothing, or one without the parameter, gets 204 as before.
* Heartbeat acks carry ``report_all`` (the control plane may have lost track of the host:
  first heartbeat this replica sees, or one after a silence long enough for SUSPECT) and
  ``lab_loads`` (whether any VM of the host is under a Cloud Open Lab load).
* The real agent (``HttpControlPlane`` over the in-process app) provisions an instance
  with one long-poll and one status report.
* A heartbeat re-verifies the agent's credential in its own UPDATE and keeps the agent's
  principal cached meanwhile (a credential revoked elsewhere is refused at once), and
  its ack carries a fencing lease that follows an evacuation policy changed here at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from agents.main import build_agent
from controlplane.api.routes.agent import HeartbeatBook, LoadedHosts
from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources
from controlplane.store.host import Beat
from controlplane.store.tables import HostRow
from tests.api_helper import START, Agent, Api, check
from tests.component.agent_harness import agent_settings, simulated_host

CAPACITY = (16, 32768, 500)


def _status(api: Api, agent_host: str, headers: dict[str, str], body: object) -> httpx.Response:
    response: httpx.Response = api.client.post(
        f"/v1/agent/hosts/{agent_host}/status",
        params={"assignments": "true"},
        json=body,
        headers=headers,
    )
    return response


def test_a_report_that_changed_something_is_answered_with_the_assignments(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    instance = api.create_instance("web-1")["id"]
    before = agent.assignments()
    assert [a["create"] for a in before["assignments"]] == [True]
    running = {"instances": [{"instance_id": instance, "state": "running"}]}

    answer = _status(api, agent.host_id, agent.headers, running)

    assert answer.status_code == 200
    listing = answer.json()
    assert listing["host_id"] == agent.host_id
    assert listing["generation"] > before["generation"]  # "create" no longer applies
    assert [(a["instance_id"], a["create"]) for a in listing["assignments"]] == [(instance, False)]
    assert listing == agent.assignments(generation=listing["generation"])
    assert api.instance(instance)["state"] == "RUNNING"
    [event] = api.audit(action="agent.status")  # once, with the real answer
    assert (event["target_id"], event["status_code"]) == (agent.host_id, 200)
    # The same report again changes nothing: 204, as without the parameter.
    assert _status(api, agent.host_id, agent.headers, running).status_code == 204
    assert agent.report({"instance_id": instance, "state": "stopped"}).status_code == 204


def test_heartbeat_acks_say_when_to_report_everything_and_whether_a_lab_load_runs(
    api: Api,
) -> None:
    agent = api.register_host("tpe1-h01")
    first = agent.heartbeat(*CAPACITY).json()
    assert first["report_all"] is True  # this replica has not heard from the host yet
    assert first["lab_loads"] is False
    assert agent.heartbeat(*CAPACITY).json()["report_all"] is False
    api.clock.advance(timedelta(seconds=api.settings.host_suspect_after_s + 1))
    assert agent.heartbeat(*CAPACITY).json()["report_all"] is True  # silent long enough
    assert agent.heartbeat(*CAPACITY).json()["report_all"] is False


def test_the_real_agent_provisions_with_one_long_poll_and_one_report(
    api: Api, tmp_path: Path
) -> None:
    token = api.bootstrap_token()
    calls: list[str] = []
    client = api.client
    client.event_hooks["request"] = [lambda r: calls.append(f"{r.method} {r.url.path}")]
    host = simulated_host(tmp_path / "host")
    try:
        agent = build_agent(
            agent_settings(tmp_path / "agent", bootstrap_token=token, name="tpe1-h09"),
            http_client=client,
            driver=host.driver,
        )
        host_id = agent.ensure_registered().host_id
        assert agent.sync(wait_s=0) is not None  # the empty host's first pass
        instance = api.create_instance("web-1")["id"]
        calls.clear()

        report = agent.sync(wait_s=0)

        prefix = f"/v1/agent/hosts/{host_id}"
        assert calls == [f"GET {prefix}/assignments", f"POST {prefix}/status"]
        assert report is not None
        assert api.instance(instance)["state"] == "RUNNING"
        # The answer to the report carried the generation the flip of "create" made.
        assert agent.generation == api.store.instances.assignment_generation(host_id)
    finally:
        client.event_hooks["request"] = []
        host.driver.close()


def _host(capacity: Resources, state: HostState, at_s: float) -> Beat:
    return Beat("h1", "tpe-1", state, capacity, START + timedelta(seconds=at_s))


def test_the_heartbeat_book_says_when_a_heartbeat_may_have_made_room() -> None:
    book = HeartbeatBook(silent_after_s=8.0)
    small, big = Resources(vcpus=8, ram_mib=16384), Resources(vcpus=16, ram_mib=16384)
    assert book.record(_host(small, HostState.ACTIVE, 0))  # first heard of
    assert not book.record(_host(small, HostState.ACTIVE, 4))
    assert book.record(_host(big, HostState.ACTIVE, 8))  # capacity changed
    assert book.record(_host(big, HostState.MAINTENANCE, 12))  # state changed
    assert not book.record(_host(big, HostState.MAINTENANCE, 16))
    assert book.record(_host(big, HostState.MAINTENANCE, 24))  # silent for 8 s


def test_loaded_hosts_are_read_once_per_ttl_for_the_whole_fleet() -> None:
    reads: list[int] = []
    now = [0.0]
    loaded = {"h1"}

    def read() -> set[str]:
        reads.append(1)
        return set(loaded)

    cache = LoadedHosts(read, ttl_s=2.0, now=lambda: now[0])
    assert "h1" in cache
    assert "h2" not in cache
    assert "h1" in cache
    assert len(reads) == 1
    loaded.add("h2")
    now[0] = 2.0
    assert "h2" in cache
    assert len(reads) == 2


def test_heartbeats_keep_the_agent_authenticated_and_recheck_its_credential(
    api: Api, api_factory: Callable[..., Api]
) -> None:
    registered = api.register_host("tpe1-h01")
    other = api_factory(api.url, migrate=False, auth_cache_ttl_s=5.0)  # another replica
    now = [1000.0]
    other.store.users.cache.now = lambda: now[0]
    agent = Agent(other, registered.host_id, registered.name, registered.credential, "tpe-1")
    agent.heartbeat(*CAPACITY)
    for _ in range(3):  # 12 s in all, each heartbeat within the 5 s TTL of the last
        now[0] += 4.0
        assert agent.heartbeat(*CAPACITY).json()["host_state"] == "active"
    assert other.store.users.cached(agent.credential) is not None
    assert agent.assignments()["host_id"] == agent.host_id

    with api.store.db.transaction() as session:  # revoked (as if re-enrolled) elsewhere
        session.execute(
            update(HostRow).where(HostRow.id == agent.host_id).values(credential_hash="x" * 64)
        )
    assert agent.heartbeat(*CAPACITY, expect=401).json()["code"] == "auth.unauthenticated"
    assert other.store.users.cached(agent.credential) is None
    check(
        other.client.get(f"/v1/agent/hosts/{agent.host_id}/assignments", headers=agent.headers),
        401,
    )


def test_the_fencing_lease_follows_an_evacuation_policy_changed_here(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    assert agent.heartbeat(*CAPACITY).json()["fence_after_s"] == 0.0
    api.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "restart-elsewhere"}, expect=200)
    lease = agent.heartbeat(*CAPACITY).json()["fence_after_s"]
    assert lease > 0
    api.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "none"}, expect=200)
    assert agent.heartbeat(*CAPACITY).json()["fence_after_s"] == 0.0
    api.patch("/v1/orgs/moi", json={"evacuation_policy": "restart-elsewhere"}, expect=200)
    assert agent.heartbeat(*CAPACITY).json()["fence_after_s"] == lease  # a ministry forces it
