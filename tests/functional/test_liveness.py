"""Host liveness through the API on SQLite and PostgreSQL, with a fake clock: silent hosts
become SUSPECT then DOWN, their instances UNKNOWN; a heartbeat brings them back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api_helper import Agent, Api, error

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
