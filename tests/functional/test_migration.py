"""Live migration, host drain/maintenance and data-centre evacuation through the API, on
SQLite and PostgreSQL (the ``api`` fixture), with agents simulated over ``/v1/agent``.

The state machine: RUNNING -> MIGRATING (target claimed) -> source ready -> handoff ->
target RUNNING -> RUNNING on the target with the source claim released in the same
transaction. Failures roll back (target released, instance stays on the source, the
action history says why). Capacity and server groups are respected.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api_helper import Agent, Api, FakeClock, error
from tests.functional.fleet_helpers import migration_agent_pass, settle

SMALL = {"vcpus": 1, "ram_mib": 1024, "disk_gib": 10}


def used(api: Api, agent: Agent) -> dict[str, int]:
    body: dict[str, int] = api.get(f"/v1/hosts/{agent.host_id}", expect=200).json()["used"]
    return body


def running_on(api: Api, name: str, agents: list[Agent], **fields: Any) -> dict[str, Any]:
    inst = api.create_instance(name, **fields)
    for agent in agents:
        agent.converge()
    got = api.instance(inst["id"])
    assert got["state"] == "RUNNING"
    return got


def by_name(agents: list[Agent], name: str) -> Agent:
    return next(a for a in agents if a.name == name)


def assigned(agent: Agent) -> dict[str, dict[str, Any]]:
    return {a["instance_id"]: a for a in agent.assignments()["assignments"]}


def test_live_migration_moves_claim_and_host_in_steps(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    inst = running_on(api, "web-1", agents)
    source = by_name(agents, inst["host_name"])
    target = next(a for a in agents if a is not source)

    mig = api.post(f"/v1/instances/{inst['id']}/migrate", json={}, expect=202).json()
    assert (mig["phase"], mig["kind"]) == ("preparing", "live")
    assert (mig["source_host"], mig["target_host"]) == (source.name, target.name)
    assert api.instance(inst["id"])["state"] == "MIGRATING"
    assert used(api, source)["vcpus"] == 1
    assert used(api, target)["vcpus"] == 1

    # The source is told where to go; the target only adopts (no create before handoff).
    order = assigned(source)[inst["id"]]["migration"]
    assert order["role"] == "source"
    assert order["live"] is True
    incoming = assigned(target)[inst["id"]]
    assert incoming["migration"]["role"] == "target"
    assert incoming["create"] is False

    # A MIGRATING instance cannot start a second move (nor be stopped or deleted).
    error(api.post(f"/v1/instances/{inst['id']}/migrate", json={}), 409, "instance.invalid_state")
    error(api.post(f"/v1/instances/{inst['id']}/stop"), 409, "instance.invalid_state")

    # A premature "running" from the target changes nothing: it cannot run there yet.
    target.status(inst["id"], "running")
    assert api.instance(inst["id"])["host_name"] == source.name

    migration_agent_pass(source)  # pauses its copy, reports ready
    assert api.get(f"/v1/migrations/{mig['id']}", expect=200).json()["phase"] == "handoff"
    assert assigned(target)[inst["id"]]["create"] is True
    assert api.instance(inst["id"])["state"] == "MIGRATING"

    migration_agent_pass(target)  # defines and starts it, reports running
    moved = api.instance(inst["id"])
    assert (moved["state"], moved["host_name"]) == ("RUNNING", target.name)
    assert used(api, source)["vcpus"] == 0
    assert used(api, target)["vcpus"] == 1
    assert inst["id"] not in assigned(source)  # its agent fences the old copy
    assert assigned(target)[inst["id"]]["migration"] is None
    done = api.get(f"/v1/migrations/{mig['id']}", expect=200).json()
    assert done["phase"] == "done"
    assert done["finished_at"]
    actions = api.get(f"/v1/instances/{inst['id']}/actions", expect=200).json()
    assert [(a["action"], a["result"]) for a in actions][-1] == ("migrate", "success")
    audit = api.audit(action="instance.migrate")
    assert [e["outcome"] for e in audit] == ["failure", "success"]  # newest first


def test_source_failure_rolls_back_with_reason(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    inst = running_on(api, "db-1", agents)
    source = by_name(agents, inst["host_name"])
    target = next(a for a in agents if a is not source)
    api.post(f"/v1/instances/{inst['id']}/migrate", json={"target": target.name}, expect=202)

    migration_agent_pass(source, fail_source="unable to connect to server: connection refused")
    back = api.instance(inst["id"])
    assert (back["state"], back["host_name"]) == ("RUNNING", source.name)
    assert used(api, target)["vcpus"] == 0
    assert used(api, source)["vcpus"] == 1
    assert inst["id"] not in assigned(target)
    assert assigned(source)[inst["id"]]["migration"] is None
    last = api.get(f"/v1/instances/{inst['id']}/actions", expect=200).json()[-1]
    assert last["action"] == "migrate"
    assert last["result"] == "error"
    assert "connection refused" in last["message"]
    [mig] = api.get("/v1/migrations", params={"instance": inst["id"]}, expect=200).json()
    assert mig["phase"] == "failed"
    assert "connection refused" in mig["message"]


def test_target_error_after_handoff_rolls_back(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    inst = running_on(api, "app-1", agents)
    source = by_name(agents, inst["host_name"])
    target = next(a for a in agents if a is not source)
    api.post(f"/v1/instances/{inst['id']}/migrate", json={}, expect=202)
    migration_agent_pass(source)
    target.status(inst["id"], "error", message="cannot define domain: image missing")
    back = api.instance(inst["id"])
    assert (back["state"], back["host_name"]) == ("RUNNING", source.name)
    assert used(api, target)["vcpus"] == 0


def test_timeout_rolls_back(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    inst = running_on(api, "slow-1", agents)
    api.post(f"/v1/instances/{inst['id']}/migrate", json={}, expect=202)
    assert api.app.state.drains.run_once().rolled_back == []
    assert isinstance(api.clock, FakeClock)
    api.clock.advance(timedelta(seconds=api.settings.migration_timeout_s + 1))
    assert len(api.app.state.drains.run_once().rolled_back) == 1
    assert api.instance(inst["id"])["state"] == "RUNNING"
    assert sum(used(api, a)["vcpus"] for a in agents) == 1


def test_capacity_groups_and_bad_requests(api: Api) -> None:
    agents = [
        api.register_host("h1", vcpus=2, ram_mib=4096),
        api.register_host("h2", vcpus=2, ram_mib=4096),
        api.register_host("h3", vcpus=2, ram_mib=4096),
    ]
    gid = api.post(
        "/v1/server-groups",
        json={"name": "ha", "project": "disaster", "policy": "anti-affinity"},
        expect=201,
    ).json()["id"]
    body = {"name": "ha-1", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    first = api.post("/v1/instances", json=body | {"server_group": gid}, expect=202).json()
    second = api.post(
        "/v1/instances", json=body | {"name": "ha-2", "server_group": gid}, expect=202
    ).json()
    for agent in agents:
        agent.converge()
    first, second = api.instance(first["id"]), api.instance(second["id"])
    free = next(h for h in ("h1", "h2", "h3") if h not in (first["host_name"], second["host_name"]))

    # Anti-affinity: the only host allowed is the one without a member.
    mig = api.post(f"/v1/instances/{first['id']}/migrate", json={}, expect=202).json()
    assert mig["target_host"] == free
    settle(api, agents)
    assert api.instance(first["id"])["host_name"] == free

    # Now both other hosts... the old host is free again; moving onto the other member's
    # host is refused, naming the group.
    err = error(
        api.post(
            f"/v1/instances/{first['id']}/migrate",
            json={"target": second["host_name"]},
            expect=None,
        ),
        409,
        "migration.no_valid_host",
    )
    assert "ha" in err["message"]
    assert "anti-affinity" in err["message"]

    # Capacity: fill the empty host (3 x 1024 of 3584 MiB usable), then an explicit move
    # there names the shortage.
    empty = next(h for h in ("h1", "h2", "h3") if h not in (free, second["host_name"]))
    others = [a for a in agents if a.name != empty]
    for agent in others:
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "disabled"}, expect=200)
    for i in range(3):
        api.create_instance(f"fill-{i}")
    for agent in agents:
        agent.converge()
    for agent in others:
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "active"}, expect=200)
    err = error(
        api.post(f"/v1/instances/{second['id']}/migrate", json={"target": empty}),
        409,
        "host.insufficient_capacity",
    )
    assert "ram_mib: needs 1024, 512 free" in err["message"]

    # Bad requests: unknown instance 404, unknown field 422, same host 400, non-admin 403.
    error(api.post("/v1/instances/nope/migrate", json={}), 404)
    error(api.post(f"/v1/instances/{second['id']}/migrate", json={"host": "h1"}), 422)
    error(
        api.post(f"/v1/instances/{second['id']}/migrate", json={"target": second["host_name"]}),
        400,
    )
    user = api.create_user("fire-admin", "ministry-admin", "moi")
    error(api.post(f"/v1/instances/{second['id']}/migrate", json={}, token=user), 403)
    # Nowhere to go: every other host is rejected, each with its reason.
    err = error(
        api.post(f"/v1/instances/{second['id']}/migrate", json={}), 409, "migration.no_valid_host"
    )
    assert "anti-affinity" in err["message"]
    assert "ram_mib: needs 1024 MiB RAM, 512 free" in err["message"]
    assert err["details"]["rejected"] == {"capacity": 1, "server_group": 1}


def test_host_drain_respects_limit_and_finishes(api: Api) -> None:
    agents = [api.register_host(n) for n in ("h1", "h2", "h3")]
    api.patch(f"/v1/hosts/{agents[1].host_id}", json={"state": "disabled"}, expect=200)
    api.patch(f"/v1/hosts/{agents[2].host_id}", json={"state": "disabled"}, expect=200)
    ids = [running_on(api, f"vm-{i}", agents)["id"] for i in range(3)]
    for agent in agents[1:]:
        api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "active"}, expect=200)

    drain = api.post("/v1/hosts/h1/drain", json={"max_parallel": 2}, expect=202).json()
    assert drain["total"] == 3
    assert drain["state"] == "running"
    assert api.get(f"/v1/hosts/{agents[0].host_id}", expect=200).json()["state"] == "draining"
    # No new placements on a draining host.
    extra = api.create_instance("late")
    assert api.instance(extra["id"])["host_name"] in ("h2", "h3")

    report = api.app.state.drains.run_once()
    assert len(report.drains.started) == 2  # the limit
    progress = api.get(f"/v1/drains/{drain['id']}", expect=200).json()
    assert progress["in_flight"] == 2
    assert progress["remaining"] == 3
    assert len(api.app.state.drains.run_once().drains.started) == 0  # still at the limit

    settle(api, agents, rounds=4)
    final = api.get(f"/v1/drains/{drain['id']}", expect=200).json()
    assert final["state"] == "done"
    assert final["migrated"] == 3
    assert final["failed"] == 0
    for iid in ids:
        got = api.instance(iid)
        assert got["state"] == "RUNNING"
        assert got["host_name"] != "h1"
    assert used(api, agents[0]) == {"vcpus": 0, "ram_mib": 0, "disk_gib": 0}
    assert api.get(f"/v1/hosts/{agents[0].host_id}", expect=200).json()["state"] == "draining"

    api.post("/v1/hosts/h1/undrain", expect=200)
    assert api.get(f"/v1/hosts/{agents[0].host_id}", expect=200).json()["state"] == "active"


def test_drain_blocked_reports_why(api: Api) -> None:
    agents = [api.register_host("h1")]
    inst = running_on(api, "alone", agents)
    api.post("/v1/hosts/h1/drain", json={}, expect=202)
    report = api.app.state.drains.run_once()
    assert report.drains.started == []
    [drain] = api.get("/v1/drains", params={"subject": "h1"}, expect=200).json()
    assert inst["id"] in drain["message"]
    assert "no host" in drain["message"]
    error(api.post("/v1/hosts/h1/drain", json={"max_parallel": 0}), 422)


def test_maintenance_until_records_window_and_ends(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    api.patch(f"/v1/hosts/{agents[1].host_id}", json={"state": "disabled"}, expect=200)
    inst = running_on(api, "vm", agents)
    api.patch(f"/v1/hosts/{agents[1].host_id}", json={"state": "active"}, expect=200)
    until = (api.clock() + timedelta(hours=2)).isoformat()
    drain = api.post(
        "/v1/hosts/h1/maintenance", json={"until": until, "reason": "BIOS update"}, expect=202
    ).json()
    windows = api.get("/v1/maintenance-windows", expect=200).json()
    assert any(w["id"] == drain["maintenance_window"] for w in windows)
    settle(api, agents)
    assert api.instance(inst["id"])["host_name"] == "h2"
    host = api.get(f"/v1/hosts/{agents[0].host_id}", expect=200).json()
    assert host["state"] == "maintenance"
    assert isinstance(api.clock, FakeClock)
    api.clock.advance(timedelta(hours=2, seconds=1))
    api.app.state.drains.run_once()
    assert api.get(f"/v1/hosts/{agents[0].host_id}", expect=200).json()["state"] == "active"
    past = (api.clock() - timedelta(hours=1)).isoformat()
    err = error(api.post("/v1/hosts/h1/maintenance", json={"until": past}), 400)
    assert err["details"]["field"] == "until"


def test_dc_evacuate_moves_workload_cold_and_resumes(api: Api) -> None:
    api.create_dc("khh-1", "Kaohsiung 1")
    src = [api.register_host("tpe-h1")]
    ids = [running_on(api, f"svc-{i}", src)["id"] for i in range(3)]
    dst = [api.register_host("khh-h1", dc="khh-1")]
    agents = src + dst

    drain = api.post(
        "/v1/datacentres/tpe-1/evacuate", json={"target": "khh-1", "max_parallel": 2}, expect=202
    ).json()
    assert drain["kind"] == "dc"
    assert drain["total"] == 3
    assert api.get("/v1/datacentres/tpe-1", expect=200).json()["state"] == "draining"
    # No new placements in a draining data centre.
    pending = api.create_instance("new", datacentre="tpe-1")
    assert api.instance(pending["id"])["state"] == "PENDING"

    report = api.app.state.drains.run_once()
    assert len(report.drains.started) == 2
    mig = api.get("/v1/migrations", params={"drain": drain["id"]}, expect=200).json()[0]
    assert mig["kind"] == "cold"
    assert mig["target_datacentre"] == "khh-1"
    # The source powers its copy off before the target starts one.
    for a in src[0].assignments()["assignments"]:
        if a.get("migration"):
            assert a["migration"]["live"] is False

    # "Restart" the control plane: a new replica over the same database resumes the drain.
    settle(api, agents, rounds=5)
    final = api.get(f"/v1/drains/{drain['id']}", expect=200).json()
    assert final["migrated"] == 3
    for iid in ids:
        got = api.instance(iid)
        assert (got["state"], got["datacentre"], got["host_name"]) == (
            "RUNNING",
            "khh-1",
            "khh-h1",
        )
    error(api.post("/v1/datacentres/tpe-1/evacuate", json={"target": "tpe-1"}), 400)
    error(api.post("/v1/datacentres/nope/evacuate", json={"target": "khh-1"}), 404)


def test_source_host_down_mid_migration_makes_it_unknown(api: Api) -> None:
    agents = [api.register_host("h1"), api.register_host("h2")]
    inst = running_on(api, "edge-1", agents)
    source = by_name(agents, inst["host_name"])
    target = next(a for a in agents if a is not source)
    api.post(f"/v1/instances/{inst['id']}/migrate", json={}, expect=202)
    for agent in agents:
        agent.heartbeat(16, 32768, 500)
    assert isinstance(api.clock, FakeClock)
    api.clock.advance(timedelta(seconds=api.settings.host_down_after_s + 1))
    target.heartbeat(16, 32768, 500)
    api.app.state.liveness.run_once()
    assert api.get(f"/v1/hosts/{source.host_id}", expect=200).json()["state"] == "down"
    assert len(api.app.state.drains.run_once().rolled_back) == 1
    gone = api.instance(inst["id"])
    assert (gone["state"], gone["host_name"]) == ("UNKNOWN", source.name)
    assert used(api, target)["vcpus"] == 0
