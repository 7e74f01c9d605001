"""Instances through the API, driven by simulated agent status reports: lifecycle, action
history, failures, pending placement and listing. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.api_helper import Agent, Api, error


def actions(api: Api, instance_id: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = api.get(f"/v1/instances/{instance_id}/actions", expect=200).json()
    return body


def host_used(api: Api, name: str) -> dict[str, int]:
    used: dict[str, int] = next(h for h in api.hosts() if h["name"] == name)["used"]
    return used


def test_full_lifecycle(api: Api) -> None:
    agent = api.register_host("tpe-h01", vcpus=8, ram_mib=16896, disk_gib=200)
    created = api.post(
        "/v1/instances",
        json={"name": "web-01", "project": "disaster", "flavor": "m1.medium", "image": "cirros"},
        expect=202,
    )
    inst = created.json()
    create_rid = created.headers["x-request-id"]
    iid = inst["id"]
    assert inst["state"] == "SCHEDULED"
    assert (inst["host"], inst["host_name"], inst["datacentre"]) == (
        agent.host_id,
        "tpe-h01",
        "tpe-1",
    )
    assert inst["resources"] == {"vcpus": 2, "ram_mib": 4096, "disk_gib": 40}
    assert (inst["org_path"], inst["created_by"]) == ("gov/moi/nfa/disaster", "admin")
    assert inst["launched_at"] is None
    assert inst["pending_reason"] is None
    assert host_used(api, "tpe-h01") == {"vcpus": 2, "ram_mib": 4096, "disk_gib": 40}

    # the agent sees it as something to create and run
    (assignment,) = agent.assignments()["assignments"]
    assert assignment["instance_id"] == iid
    assert (assignment["desired"], assignment["create"]) == ("running", True)
    assert assignment["image"]["path"] == "/var/lib/govcloud/cirros.qcow2"

    agent.status(iid, "building")
    assert api.instance(iid)["state"] == "BUILDING"
    agent.status(iid, "running")
    running = api.instance(iid)
    assert running["state"] == "RUNNING"
    assert running["launched_at"] is not None
    assert agent.assignments()["assignments"][0]["create"] is False

    # stop: intent first, state when the agent reports it
    stopped = api.act(iid, "stop")
    assert (stopped["state"], stopped["desired_power"]) == ("RUNNING", "stopped")
    assert agent.assignments()["assignments"][0]["desired"] == "stopped"
    agent.converge()
    assert api.instance(iid)["state"] == "STOPPED"
    assert host_used(api, "tpe-h01")["vcpus"] == 2  # a stopped VM keeps its claim

    api.act(iid, "start")
    agent.converge()
    assert api.instance(iid)["state"] == "RUNNING"

    rebooted = api.act(iid, "reboot")
    assert rebooted["reboot_seq"] == 1
    agent.status(iid, "running", reboot_seq=0)  # not yet rebooted
    assert actions(api, iid)[-1]["result"] == "pending"
    agent.converge()
    assert actions(api, iid)[-1]["result"] == "success"

    deleting = api.act(iid, "delete")
    assert deleting["state"] == "DELETING"
    assert agent.assignments()["assignments"][0]["desired"] == "deleted"
    assert host_used(api, "tpe-h01")["vcpus"] == 2  # held until the agent confirms
    agent.converge()
    gone = api.instance(iid)
    assert gone["state"] == "DELETED"
    assert host_used(api, "tpe-h01") == {"vcpus": 0, "ram_mib": 0, "disk_gib": 0}
    assert agent.assignments()["assignments"] == []
    assert api.instances() == []
    assert [i["id"] for i in api.instances(state="DELETED")] == [iid]

    history = actions(api, iid)
    assert [(a["action"], a["result"]) for a in history] == [
        ("create", "success"),
        ("stop", "success"),
        ("start", "success"),
        ("reboot", "success"),
        ("delete", "success"),
    ]
    assert history[0]["request_id"] == create_rid
    assert all(a["actor"] == "admin" and a["finished_at"] for a in history)


def test_action_request_ids_are_the_callers(api: Api) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    agent.converge()
    api.post(f"/v1/instances/{iid}/stop", headers={"X-Request-Id": "change-4711"}, expect=202)
    assert actions(api, iid)[-1]["request_id"] == "change-4711"


@pytest.mark.parametrize(
    ("action", "state_after_setup", "allowed"),
    [
        ("start", "RUNNING", ["STOPPED"]),
        ("reboot", "STOPPED", ["RUNNING"]),
        ("stop", "STOPPED", ["BUILDING", "RUNNING", "SCHEDULED"]),
    ],
)
def test_actions_refused_in_the_wrong_state(
    api: Api, action: str, state_after_setup: str, allowed: list[str]
) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    agent.status(iid, state_after_setup.lower())
    body = error(api.post(f"/v1/instances/{iid}/{action}"), 409, "instance.invalid_state")
    assert body["details"]["state"] == state_after_setup
    assert body["details"]["allowed"] == sorted(allowed)
    assert f"cannot {action} instance {iid} in state {state_after_setup}" in body["message"]
    # the refused calls left no action record behind
    assert [a["action"] for a in actions(api, iid)] == ["create"]


def test_delete_twice_and_act_on_deleted(api: Api) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    api.act(iid, "delete")
    error(api.delete(f"/v1/instances/{iid}"), 409, "instance.invalid_state")
    agent.converge()
    error(api.post(f"/v1/instances/{iid}/start"), 409, "instance.invalid_state")
    error(api.delete(f"/v1/instances/{iid}"), 409, "instance.invalid_state")


def test_unknown_instance(api: Api) -> None:
    for method, path in [
        ("GET", "/v1/instances/nope"),
        ("GET", "/v1/instances/nope/actions"),
        ("POST", "/v1/instances/nope/start"),
        ("DELETE", "/v1/instances/nope"),
    ]:
        body = error(api.call(method, path), 404, "instance.not_found")
        assert body["details"] == {"kind": "instance", "id": "nope"}


def test_domain_vanished_becomes_error_then_can_be_deleted(api: Api) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    agent.status(iid, "running")
    api.act(iid, "reboot")  # in flight when the domain disappears
    agent.status(iid, "absent")
    broken = api.instance(iid)
    assert broken["state"] == "ERROR"
    assert "vanished" in broken["fault"]
    assert "last seen RUNNING" in broken["fault"]
    reboot = actions(api, iid)[-1]
    assert (reboot["action"], reboot["result"]) == ("reboot", "error")
    assert "vanished" in reboot["message"]
    # not recreated behind the user's back
    assert agent.assignments()["assignments"][0]["create"] is False
    assert host_used(api, "h1")["vcpus"] == 1  # the claim stays until deleted

    api.act(iid, "delete")
    agent.converge()
    assert api.instance(iid)["state"] == "DELETED"
    assert host_used(api, "h1")["vcpus"] == 0


def test_agent_reported_error_keeps_its_message(api: Api) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    agent.status(iid, "error", message="qemu: could not open disk image")
    failed = api.instance(iid)
    assert (failed["state"], failed["fault"]) == ("ERROR", "qemu: could not open disk image")
    assert actions(api, iid)[0]["result"] == "error"
    # recovery: the agent later finds it running
    agent.status(iid, "running")
    assert api.instance(iid)["state"] == "RUNNING"


def test_absent_before_creation_is_not_an_error(api: Api) -> None:
    agent = api.register_host("h1")
    iid = api.create_instance("web-01")["id"]
    agent.status(iid, "absent")  # the agent has not defined it yet
    assert api.instance(iid)["state"] == "SCHEDULED"


def test_pending_reason_names_hosts_and_dimensions_then_placed(api: Api) -> None:
    none_yet = api.create_instance("big-01", flavor="m1.large")
    assert none_yet["state"] == "PENDING"
    assert none_yet["host"] is None
    assert "no hosts are registered" in none_yet["pending_reason"]

    # a host too small in RAM: usable = 4608 - 512 reserved = 4096 MiB
    api.register_host("tpe-h01", vcpus=8, ram_mib=4608, disk_gib=500)
    assert api.place_pending() == 0
    reason = api.instance(none_yet["id"])["pending_reason"]
    assert "no valid host among 1 evaluated (rejected 1 by capacity)" in reason
    assert "tpe-h01: ram_mib: needs 8192 MiB RAM, 4096 free of 4096" in reason

    other = api.create_instance("big-02", flavor="m1.large")
    assert other["state"] == "PENDING"
    assert "ram_mib: needs 8192 MiB RAM" in other["pending_reason"]

    api.register_host("tpe-h02", vcpus=8, ram_mib=8704, disk_gib=500)  # room for exactly one
    assert api.place_pending() == 1
    first, second = api.instance(none_yet["id"]), api.instance(other["id"])
    assert (first["state"], first["host_name"], first["pending_reason"]) == (
        "SCHEDULED",
        "tpe-h02",
        None,
    )
    assert second["state"] == "PENDING"  # oldest first; then the host was full
    assert "tpe-h02: ram_mib: needs 8192 MiB RAM, 0 free of 8192" in second["pending_reason"]
    assert api.place_pending() == 0

    # deleting a PENDING instance needs no agent
    assert api.act(second["id"], "delete")["state"] == "DELETED"
    assert api.place_pending() == 0


def test_unplaceable_old_requests_do_not_keep_younger_ones_from_being_tried(api: Api) -> None:
    # More PENDING requests that can never fit than one pass tries (100), then one that can.
    api.create_flavor("huge", vcpus=256, ram_mib=2048, disk_gib=10)
    for i in range(101):
        api.create_instance(f"big-{i}", flavor="huge")
    small = api.create_instance("small-0")
    api.register_host("tpe1-h01")
    # The first pass tries the 100 oldest; the next goes on after them.
    assert [api.place_pending() for _ in range(2)] == [0, 1]
    assert api.instance(small["id"])["state"] == "SCHEDULED"
    assert api.place_pending() == 0  # and wraps around to the oldest again


def test_heartbeat_with_more_capacity_places_pending(api: Api) -> None:
    agent = api.register_host("h1", vcpus=4, ram_mib=1536, disk_gib=100)
    assert api.create_instance("a")["state"] == "SCHEDULED"
    waiting = api.create_instance("b")
    assert waiting["state"] == "PENDING"
    agent.heartbeat(4, 2560, 100)  # the host got more RAM
    assert api.place_pending() == 1
    assert api.instance(waiting["id"])["state"] == "SCHEDULED"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("maintenance", "host is maintenance"),
        ("draining", "data centre tpe-1 is not active"),
    ],
)
def test_inactive_hosts_and_data_centres_take_nothing(api: Api, setup: str, expected: str) -> None:
    agent = api.register_host("h1")
    if setup == "maintenance":
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "maintenance"}, expect=200)
    else:
        api.patch("/v1/datacentres/tpe-1", json={"state": "draining"}, expect=200)
    inst = api.create_instance("web-01")
    assert inst["state"] == "PENDING"
    assert f"h1: {expected}" in inst["pending_reason"]
    if setup == "maintenance":
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "active"}, expect=200)
    else:
        api.patch("/v1/datacentres/tpe-1", json={"state": "active"}, expect=200)
    assert api.place_pending() == 1


def test_requested_datacentre_is_honoured(api: Api) -> None:
    api.create_dc("txg-1", "Taichung 1")
    api.register_host("tpe-h01")
    inst = api.create_instance("web-01", datacentre="txg-1")
    assert inst["state"] == "PENDING"
    assert inst["requested_datacentre"] == "txg-1"
    api.register_host("txg-h01", dc="txg-1")
    api.register_host("tpe-h02")
    assert api.place_pending() == 1
    assert api.instance(inst["id"])["host_name"] == "txg-h01"
    error(
        api.post(
            "/v1/instances",
            json={
                "name": "x",
                "project": "disaster",
                "flavor": "m1.small",
                "image": "cirros",
                "datacentre": "nowhere",
            },
        ),
        404,
        "dc.not_found",
    )


def test_pending_loop_places_when_a_host_registers(
    db_url: str, api_factory: Callable[..., Api]
) -> None:
    """The real background loop (run_loops=True): registration pokes it."""
    api = api_factory(db_url, run_loops=True, pending_retry_interval_s=30)
    api.seed()
    waiting = api.create_instance("web-01")
    assert waiting["state"] == "PENDING"
    api.register_host("h1")
    deadline = time.monotonic() + 30
    while api.instance(waiting["id"])["state"] == "PENDING":
        assert time.monotonic() < deadline, "the pending loop never placed the instance"
        time.sleep(0.05)
    placed = api.instance(waiting["id"])
    assert (placed["state"], placed["host_name"]) == ("SCHEDULED", "h1")


# -- listing --------------------------------------------------------------------------------


@pytest.fixture
def fleet(api: Api) -> dict[str, Any]:
    """Two DCs with one host each and instances in both ministries' projects."""
    api.create_dc("txg-1", "Taichung 1")
    tpe = api.register_host("tpe-h01")
    txg = api.register_host("txg-h01", dc="txg-1")
    made = {}
    for i in range(5):
        made[f"moi-{i}"] = api.create_instance(f"moi-{i}", "disaster", datacentre="tpe-1")
    for i in range(3):
        made[f"motc-{i}"] = api.create_instance(f"motc-{i}", "traffic", datacentre="txg-1")
    return {"tpe": tpe, "txg": txg, "made": made}


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_list_filters(api: Api, fleet: dict[str, Any]) -> None:
    tpe: Agent = fleet["tpe"]
    assert names(api.instances()) == [f"moi-{i}" for i in range(5)] + [
        f"motc-{i}" for i in range(3)
    ]
    assert names(api.instances(datacentre="txg-1")) == ["motc-0", "motc-1", "motc-2"]
    assert names(api.instances(host="tpe-h01")) == [f"moi-{i}" for i in range(5)]
    assert names(api.instances(host=tpe.host_id)) == [f"moi-{i}" for i in range(5)]
    assert names(api.instances(org="motc")) == ["motc-0", "motc-1", "motc-2"]
    assert names(api.instances(org="thb")) == ["motc-0", "motc-1", "motc-2"]
    assert names(api.instances(org="traffic")) == ["motc-0", "motc-1", "motc-2"]
    assert names(api.instances(name="moi-3")) == ["moi-3"]
    assert api.instances(name="nobody") == []
    tpe.status(fleet["made"]["moi-1"]["id"], "running")
    assert names(api.instances(state="RUNNING")) == ["moi-1"]
    assert names(api.instances(state="SCHEDULED", datacentre="tpe-1")) == [
        "moi-0",
        "moi-2",
        "moi-3",
        "moi-4",
    ]
    error(api.get("/v1/instances", params={"org": "nope"}), 404, "org.not_found")
    error(api.get("/v1/instances", params={"state": "BOGUS"}), 422, "request.invalid")


def test_pagination(api: Api, fleet: dict[str, Any]) -> None:
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"marker": marker} if marker else {})
        page = api.get("/v1/instances", params=params, expect=200).json()
        pages += 1
        assert len(page["items"]) <= 3
        seen += names(page["items"])
        marker = page["next_marker"]
        if marker is None:
            break
        assert marker == page["items"][-1]["id"]
    assert pages == 3
    assert seen == names(api.instances())  # oldest first, nothing twice, nothing missed
    assert len(seen) == len(set(seen)) == 8

    page = api.get("/v1/instances", params={"limit": 5, "org": "moi"}, expect=200).json()
    assert len(page["items"]) == 5
    assert page["next_marker"] is not None
    rest = api.get(
        "/v1/instances",
        params={"limit": 5, "org": "moi", "marker": page["next_marker"]},
        expect=200,
    ).json()
    assert rest == {"items": [], "next_marker": None}
    error(api.get("/v1/instances", params={"limit": 0}), 422, "request.invalid")
    error(api.get("/v1/instances", params={"limit": 1001}), 422, "request.invalid")
    error(api.get("/v1/instances", params={"marker": "nope"}), 404, "instance.not_found")
