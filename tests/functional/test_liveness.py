"""Host liveness through the API on SQLite and PostgreSQL, with a fake clock: silent hosts
become SUSPECT then DOWN, their instances UNKNOWN; a heartbeat brings them back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api_helper import Agent, Api, error
from tests.functional.fleet_helpers import settle

pytestmark = pytest.mark.usefixtures("backend")


def sweep(api: Api) -> dict[str, list[str]]:
    report = api.app.state.liveness.run_once().sweep
    return {"suspect": report.suspect, "down": report.down, "unknown": report.unknown}


def running(api: Api, agent: Agent, name: str) -> str:
    instance_id: str = api.create_instance(name)["id"]
    agent.converge()
    assert api.instance(instance_id)["state"] == "RUNNING"
    return instance_id


def test_a_silent_host_becomes_suspect_then_down_and_its_instances_unknown(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    instance_id = running(api, agent, "web-1")
    other = api.register_host("tpe1-h02")

    api.clock.advance(timedelta(seconds=9))
    other.heartbeat(16, 32768, 500)
    assert sweep(api) == {"suspect": ["tpe1-h01"], "down": [], "unknown": []}
    hosts = {h["name"]: h["state"] for h in api.hosts()}
    assert hosts == {"tpe1-h01": "suspect", "tpe1-h02": "active"}
    assert api.instance(instance_id)["state"] == "RUNNING"  # SUSPECT is only a warning

    api.clock.advance(timedelta(seconds=4))
    other.heartbeat(16, 32768, 500)
    assert sweep(api) == {"suspect": [], "down": ["tpe1-h01"], "unknown": [instance_id]}
    assert api.instance(instance_id)["state"] == "UNKNOWN"
    actions = api.get(f"/v1/instances/{instance_id}/actions", expect=200).json()
    assert actions[-1]["action"] == "host-down"
    assert "tpe1-h01 stopped reporting" in actions[-1]["message"]
    assert sweep(api) == {"suspect": [], "down": [], "unknown": []}  # idempotent


def test_a_down_host_takes_no_placements(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    api.clock.advance(timedelta(seconds=13))
    sweep(api)
    waiting = api.create_instance("web-2")
    assert waiting["state"] == "PENDING"
    assert "down" in waiting["pending_reason"]
    agent.heartbeat(16, 32768, 500)
    assert api.place_pending() == 1


def test_a_heartbeat_brings_the_host_back_and_the_agent_report_clears_unknown(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    instance_id = running(api, agent, "web-1")
    generation = agent.assignments()["generation"]
    api.clock.advance(timedelta(seconds=20))
    sweep(api)
    assert api.instance(instance_id)["state"] == "UNKNOWN"

    ack = agent.heartbeat(16, 32768, 500).json()

    assert ack["host_state"] == "active"
    assert agent.assignments()["generation"] > generation  # the agent is woken to resync
    agent.converge()
    assert api.instance(instance_id)["state"] == "RUNNING"


def test_a_stopped_instance_on_a_down_host_returns_stopped(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    instance_id = running(api, agent, "web-1")
    api.act(instance_id, "stop")
    agent.converge()
    api.clock.advance(timedelta(seconds=20))
    sweep(api)
    assert api.instance(instance_id)["state"] == "UNKNOWN"
    agent.heartbeat(16, 32768, 500)
    agent.converge()
    assert api.instance(instance_id)["state"] == "STOPPED"


def test_hosts_in_maintenance_are_not_watched(api: Api) -> None:
    agent = api.register_host("tpe1-h01")
    api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "maintenance"}, expect=200)
    api.clock.advance(timedelta(hours=2))
    assert sweep(api) == {"suspect": [], "down": [], "unknown": []}


@pytest.mark.parametrize("state", ["down", "suspect"])
def test_operators_cannot_set_liveness_states(api: Api, state: str) -> None:
    agent = api.register_host("tpe1-h01")
    body = error(
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": state}), 422, "request.invalid"
    )
    assert "liveness" in body["message"] or "liveness" in str(body["details"])


# -- a host keeps its administrative state through an outage --------------------------------


def host_state(api: Api, agent: Agent) -> str:
    state: str = api.get(f"/v1/hosts/{agent.host_id}", expect=200).json()["state"]
    return state


def go_down(api: Api, *alive: Agent) -> None:
    """13 s of silence from everyone but ``alive``; the liveness and drain loops run."""
    api.clock.advance(timedelta(seconds=13))
    for agent in alive:
        agent.heartbeat(16, 32768, 500)
    api.app.state.liveness.run_once()
    api.app.state.drains.run_once()


def draining_with_two(api: Api) -> tuple[Agent, Agent, list[str], str]:
    """h01 runs two instances and is being drained (one move at a time) towards h02."""
    h1 = api.register_host("tpe1-h01")
    ids = [running(api, h1, f"web-{i}") for i in range(2)]
    h2 = api.register_host("tpe1-h02")
    drain = api.post("/v1/hosts/tpe1-h01/drain", json={"max_parallel": 1}, expect=202).json()
    return h1, h2, ids, str(drain["id"])


def test_a_draining_host_back_from_down_is_draining_and_its_drain_carries_on(api: Api) -> None:
    h1, h2, ids, drain_id = draining_with_two(api)

    go_down(api, h2)
    assert host_state(api, h1) == "down"
    api.app.state.drains.run_once()
    while_down = api.get(f"/v1/drains/{drain_id}", expect=200).json()
    assert while_down["state"] == "running"  # it waits: nothing can move off a down host
    assert "tpe1-h01 is down: its instances move once it reports again" in while_down["message"]
    assert (while_down["remaining"], while_down["in_flight"]) == (2, 0)

    h1.heartbeat(16, 32768, 500)
    assert host_state(api, h1) == "draining"  # not "active": it takes no placements
    drain = api.get(f"/v1/drains/{drain_id}", expect=200).json()
    assert drain["state"] == "running"
    late = api.create_instance("late")
    assert api.instance(late["id"])["host_name"] == "tpe1-h02"

    h1.converge()  # its report clears UNKNOWN
    assert {api.instance(i)["state"] for i in ids} == {"RUNNING"}
    settle(api, [h1, h2], rounds=6)
    assert api.get(f"/v1/drains/{drain_id}", expect=200).json()["state"] == "done"
    assert {api.instance(i)["host_name"] for i in ids} == {"tpe1-h02"}
    assert host_state(api, h1) == "draining"  # the drain's end state


def test_a_host_in_maintenance_drain_back_from_down_ends_in_maintenance(api: Api) -> None:
    h1 = api.register_host("tpe1-h01")
    instance_id = running(api, h1, "web-1")
    h2 = api.register_host("tpe1-h02")
    until = (api.clock() + timedelta(hours=2)).isoformat()
    api.post("/v1/hosts/tpe1-h01/maintenance", json={"until": until}, expect=202)

    go_down(api, h2)
    h1.heartbeat(16, 32768, 500)
    assert host_state(api, h1) == "draining"
    h1.converge()
    settle(api, [h1, h2], rounds=4)

    assert api.instance(instance_id)["host_name"] == "tpe1-h02"
    assert host_state(api, h1) == "maintenance"
    api.clock.advance(timedelta(hours=2))
    h1.heartbeat(16, 32768, 500)
    assert host_state(api, h1) == "maintenance"  # silence in maintenance changes nothing


def test_an_evacuated_draining_host_comes_back_empty_and_draining(api: Api) -> None:
    api.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "restart-elsewhere"}, expect=200)
    h1, h2, ids, drain_id = draining_with_two(api)

    go_down(api, h2)
    api.clock.advance(timedelta(seconds=33))  # past the lease + margin
    h2.heartbeat(16, 32768, 500)
    report = api.app.state.liveness.run_once()
    assert sorted(report.evacuation.requeued["tpe1-h01"]) == sorted(ids)
    assert api.place_pending() == 2

    h1.heartbeat(16, 32768, 500)
    assert host_state(api, h1) == "draining"
    settle(api, [h1, h2])
    assert api.get(f"/v1/drains/{drain_id}", expect=200).json()["state"] == "done"
    assert host_state(api, h1) == "draining"


def test_an_active_host_back_from_down_is_active(api: Api) -> None:
    h1 = api.register_host("tpe1-h01")
    go_down(api)
    assert host_state(api, h1) == "down"
    h1.heartbeat(16, 32768, 500)
    assert host_state(api, h1) == "active"
