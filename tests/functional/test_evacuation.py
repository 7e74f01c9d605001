"""Evacuation of DOWN hosts through the API on SQLite and PostgreSQL, with a fake clock.

In a ``restart-elsewhere`` data centre, a host silent for longer than the agents' fencing
lease plus the margin (30 s + 15 s by default) has its instances re-placed through the
scheduler and started elsewhere; the old host, when it returns, no longer has them in
its assignments (its agent deletes the stale copy) and its reports about them are
ignored. Agents here are the API-level stand-in of tests/api_helper.py; the agent side
of fencing is tested in tests/component/test_agent_fencing.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api_helper import Agent, Api

pytestmark = pytest.mark.usefixtures("backend")
CAPACITY = (16, 32768, 500)


def restart_elsewhere(api: Api) -> None:
    api.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "restart-elsewhere"}, expect=200)


def tick(api: Api, seconds: float, *alive: Agent, capacity: tuple[int, int, int] = CAPACITY) -> Any:
    """Let ``seconds`` pass in which only ``alive`` agents heartbeat, then run the loop."""
    api.clock.advance(timedelta(seconds=seconds))
    for agent in alive:
        agent.heartbeat(*capacity)
    return api.app.state.liveness.run_once()


def used_ram(api: Api, name: str) -> int:
    [host] = [h for h in api.hosts() if h["name"] == name]
    ram: int = host["used"]["ram_mib"]
    return ram


def test_a_down_host_is_evacuated_once_the_lease_has_run_out(api: Api) -> None:
    restart_elsewhere(api)
    old = api.register_host("tpe1-h01")
    instance_id = api.create_instance("web-1")["id"]
    old.converge()
    new = api.register_host("tpe1-h02")
    ack = new.heartbeat(*CAPACITY).json()
    assert ack["fence_after_s"] == 30.0
    quota_before = api.get("/v1/quotas/disaster", expect=200).json()

    report = tick(api, 13, new)
    assert report.sweep.down == ["tpe1-h01"]
    assert report.evacuation.count == 0  # DOWN, but the lease has not run out yet
    assert api.instance(instance_id)["state"] == "UNKNOWN"

    report = tick(api, 33, new)  # 46 s of silence > 30 s lease + 15 s margin
    assert report.evacuation.requeued == {"tpe1-h01": [instance_id]}
    moved = api.instance(instance_id)
    assert moved["state"] == "PENDING"
    assert "evacuating from host tpe1-h01" in moved["pending_reason"]
    assert used_ram(api, "tpe1-h01") == 0

    assert api.place_pending() == 1
    assert api.instance(instance_id)["host_name"] == "tpe1-h02"
    new.converge()
    assert api.instance(instance_id)["state"] == "RUNNING"
    actions = api.get(f"/v1/instances/{instance_id}/actions", expect=200).json()
    evacuate = [a for a in actions if a["action"] == "evacuate"]
    assert len(evacuate) == 1
    assert evacuate[0]["result"] == "success"
    assert "tpe1-h01 is down" in evacuate[0]["message"]
    assert api.get("/v1/quotas/disaster", expect=200).json() == quota_before

    # The old host returns: nothing is assigned to it any more, and what it still reports
    # about its stale copy changes nothing.
    old.heartbeat(*CAPACITY)
    assert old.assignments()["assignments"] == []
    old.status(instance_id, "running")
    assert api.instance(instance_id)["host_name"] == "tpe1-h02"
    assert used_ram(api, "tpe1-h02") == 1024


def test_with_policy_none_instances_wait_for_their_host(api: Api) -> None:
    old = api.register_host("tpe1-h01")
    instance_id = api.create_instance("web-1")["id"]
    old.converge()
    new = api.register_host("tpe1-h02")
    assert new.heartbeat(*CAPACITY).json()["fence_after_s"] == 0.0

    report = tick(api, 3600, new)

    assert report.evacuation.count == 0
    assert api.instance(instance_id)["state"] == "UNKNOWN"


def test_an_evacuated_instance_without_room_waits_pending_with_the_reason(api: Api) -> None:
    restart_elsewhere(api)
    old = api.register_host("tpe1-h01")
    instance_id = api.create_instance("web-1", flavor="m1.medium")["id"]
    old.converge()
    small = api.register_host("tpe1-h02", vcpus=1, ram_mib=1024 + 512)
    size = (1, 1024 + 512, 500)

    tick(api, 13, small, capacity=size)
    tick(api, 33, small, capacity=size)
    assert api.place_pending() == 0

    waiting = api.instance(instance_id)
    assert waiting["state"] == "PENDING"
    assert "ram_mib" in waiting["pending_reason"]


def test_a_deletion_stuck_on_a_down_host_is_finished(api: Api) -> None:
    restart_elsewhere(api)
    old = api.register_host("tpe1-h01")
    instance_id = api.create_instance("web-1")["id"]
    old.converge()
    api.act(instance_id, "delete")

    tick(api, 13)
    report = tick(api, 33)

    assert report.evacuation.deleted == [instance_id]
    assert api.instances(state="DELETED")[0]["id"] == instance_id
    assert used_ram(api, "tpe1-h01") == 0


def test_a_host_back_before_the_deadline_keeps_its_instances(api: Api) -> None:
    restart_elsewhere(api)
    old = api.register_host("tpe1-h01")
    instance_id = api.create_instance("web-1")["id"]
    old.converge()
    tick(api, 13)
    old.heartbeat(*CAPACITY)  # back after 13 s, before the 45 s deadline
    old.converge()

    report = tick(api, 40, old)

    assert report.evacuation.count == 0
    assert api.instance(instance_id)["state"] == "RUNNING"
    assert api.instance(instance_id)["host_name"] == "tpe1-h01"
