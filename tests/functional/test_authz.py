"""Authorisation through the API, on SQLite and PostgreSQL: tenants are isolated without
leaking existence, auditors are read-only, members cannot read the audit trail, agents
act only for their own host and never through user routes, and bootstrap tokens are
one-time and expire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.api_helper import Agent, Api, error


@dataclass
class World:
    api: Api
    agent: Agent
    other_agent: Agent
    moi_admin: str
    moi_member: str
    moi_auditor: str
    root_auditor: str
    motc_admin: str
    moi_vm: dict[str, Any]
    motc_vm: dict[str, Any]


@pytest.fixture
def world(api: Api) -> World:
    agent = api.register_host("tpe-h01")
    other = api.register_host("tpe-h02")
    moi_vm = api.create_instance("moi-web", "disaster")
    motc_vm = api.create_instance("motc-web", "traffic")
    agent.converge()
    other.converge()
    return World(
        api=api,
        agent=agent,
        other_agent=other,
        moi_admin=api.create_user("moi-admin", "ministry-admin", "moi"),
        moi_member=api.create_user("moi-member", "member", "disaster"),
        moi_auditor=api.create_user("moi-auditor", "auditor", "moi"),
        root_auditor=api.create_user("root-auditor", "auditor", "gov"),
        motc_admin=api.create_user("motc-admin", "ministry-admin", "motc"),
        moi_vm=moi_vm,
        motc_vm=motc_vm,
    )


def test_ministry_admin_cannot_see_or_touch_another_ministry(world: World) -> None:
    api, token, foreign = world.api, world.moi_admin, world.motc_vm["id"]
    assert [i["name"] for i in api.instances(token=token)] == ["moi-web"]
    assert api.instances(token=token, name="motc-web") == []
    assert api.instances(token=token, host="tpe-h01") + api.instances(
        token=token, host="tpe-h02"
    ) == api.instances(token=token)

    # 404, exactly as for an id that does not exist: no existence leak
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (f"/v1/instances/{foreign}", f"/v1/instances/{foreign}/actions"):
        body = error(api.get(path, token=token), 404, "instance.not_found")
        twin = error(api.get(path.replace(foreign, missing), token=token), 404)
        assert body["message"].replace(foreign, missing) == twin["message"]
    for action in ("start", "stop", "reboot"):
        error(api.post(f"/v1/instances/{foreign}/{action}", token=token), 404, "instance.not_found")
    error(api.delete(f"/v1/instances/{foreign}", token=token), 404, "instance.not_found")
    error(api.get("/v1/instances", token=token, params={"marker": foreign}), 404)
    error(api.get("/v1/instances", token=token, params={"org": "motc"}), 404, "org.not_found")
    error(api.get("/v1/orgs/traffic", token=token), 404, "org.not_found")

    # nothing happened to the foreign instance
    untouched = api.instance(foreign)
    assert (untouched["state"], untouched["desired_power"]) == ("RUNNING", "running")
    assert [a["action"] for a in api.get(f"/v1/instances/{foreign}/actions").json()] == ["create"]


def test_ministry_admin_cannot_create_in_another_ministry(world: World) -> None:
    api, token = world.api, world.moi_admin
    vm = {"name": "sneaky", "project": "traffic", "flavor": "m1.small", "image": "cirros"}
    attempts = [
        ("/v1/instances", vm, vm | {"project": "nosuch"}),
        (
            "/v1/orgs",
            {"code": "x", "name": "x", "parent": "thb"},
            {"code": "x", "name": "x", "parent": "nosuch"},
        ),
        (
            "/v1/users",
            {"name": "spy", "role": "member", "organisation": "motc"},
            {"name": "spy", "role": "member", "organisation": "nosuch"},
        ),
    ]
    for path, foreign, missing in attempts:
        # answered exactly as for an organisation that does not exist
        body = error(api.post(path, token=token, json=foreign), 404, "org.not_found")
        twin = error(api.post(path, token=token, json=missing), 404, "org.not_found")
        assert "gov/motc" not in body["message"]
        assert body["message"].replace(body["details"]["id"], "nosuch") == twin["message"]
    assert [i["name"] for i in api.instances(org="motc")] == ["motc-web"]
    assert "x" not in {o["code"] for o in api.get("/v1/orgs").json()}
    assert "spy" not in {u["name"] for u in api.get("/v1/users").json()}
    # the refused attempts are audited in the caller's own subtree, not the victim's
    for event in api.audit(actor="moi-admin"):
        assert event["organisation"] == "gov/moi"
        assert event["outcome"] == "failure"
    assert api.audit(token=world.moi_auditor, actor="moi-admin")


def test_ministry_admin_works_inside_its_ministry(world: World) -> None:
    api, token = world.api, world.moi_admin
    vm = api.create_instance("moi-db", "disaster", token=token)
    assert vm["created_by"] == "moi-admin"
    api.act(world.moi_vm["id"], "stop", token=token)
    assert api.create_org("police", "moi")["kind"] == "agency"
    api.post(
        "/v1/users",
        token=token,
        json={"name": "moi-admin-2", "role": "ministry-admin", "organisation": "moi"},
        expect=403,
    )
    error(api.get("/v1/hosts", token=token), 403, "auth.forbidden")
    error(
        api.post(
            "/v1/flavors",
            token=token,
            json={"name": "f", "vcpus": 1, "ram_mib": 512, "disk_gib": 1},
        ),
        403,
        "auth.forbidden",
    )


def test_member_rights(world: World) -> None:
    api, token = world.api, world.moi_member
    assert [i["name"] for i in api.instances(token=token)] == ["moi-web"]
    vm = api.create_instance("member-vm", "disaster", token=token)
    api.act(vm["id"], "delete", token=token)
    body = error(api.get("/v1/audit", token=token), 403, "auth.forbidden")
    assert "audit" in body["message"]
    error(api.post("/v1/orgs", token=token, json={"code": "p2", "name": "x", "parent": "nfa"}), 403)
    error(
        api.post(
            "/v1/users",
            token=token,
            json={"name": "m2", "role": "member", "organisation": "disaster"},
        ),
        403,
    )


MUTATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    (
        "POST",
        "/v1/instances",
        {"name": "a", "project": "disaster", "flavor": "m1.small", "image": "cirros"},
    ),
    ("POST", "/v1/instances/{moi}/stop", None),
    ("POST", "/v1/instances/{moi}/reboot", None),
    ("DELETE", "/v1/instances/{moi}", None),
    ("POST", "/v1/orgs", {"code": "police", "name": "x", "parent": "moi"}),
    ("POST", "/v1/users", {"name": "u2", "role": "member", "organisation": "moi"}),
    ("POST", "/v1/flavors", {"name": "f9", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}),
    ("DELETE", "/v1/flavors/m1.tiny", None),
    ("POST", "/v1/images", {"name": "img9"}),
    ("DELETE", "/v1/images/cirros", None),
    ("POST", "/v1/datacentres", {"code": "khh-1", "name": "x"}),
    ("PATCH", "/v1/datacentres/tpe-1", {"state": "draining"}),
    ("DELETE", "/v1/datacentres/tpe-1", None),
    ("POST", "/v1/hosts/bootstrap-tokens", {"datacentre": "tpe-1"}),
    ("PATCH", "/v1/hosts/tpe-h01", {"state": "maintenance"}),
]


@pytest.mark.parametrize("who", ["moi_auditor", "root_auditor"])
def test_auditors_cannot_mutate_anything(world: World, who: str) -> None:
    api, token = world.api, getattr(world, who)
    snapshot = {
        path: api.get(path).json()
        for path in (
            "/v1/instances",
            "/v1/orgs",
            "/v1/users",
            "/v1/flavors",
            "/v1/images",
            "/v1/datacentres",
            "/v1/hosts",
        )
    }
    for method, path, body in MUTATIONS:
        response = api.call(method, path.format(moi=world.moi_vm["id"]), token=token, json=body)
        error(response, 403, "auth.forbidden")
    after = {path: api.get(path).json() for path in snapshot}
    assert after == snapshot
    failures = api.audit(actor=who.replace("_", "-"))
    assert len(failures) == len(MUTATIONS)
    assert {e["outcome"] for e in failures} == {"failure"}
    assert {e["status_code"] for e in failures} == {403}


def test_auditors_read_the_audit_log_of_their_subtree(world: World) -> None:
    api = world.api
    api.act(world.moi_vm["id"], "stop")
    api.act(world.motc_vm["id"], "stop")
    moi_events = api.audit(token=world.moi_auditor)
    assert moi_events
    assert all(e["organisation"].startswith("gov/moi") for e in moi_events)
    targets = {e["target_id"] for e in moi_events}
    assert world.moi_vm["id"] in targets
    assert world.motc_vm["id"] not in targets
    root_targets = {e["target_id"] for e in api.audit(token=world.root_auditor)}
    assert {world.moi_vm["id"], world.motc_vm["id"]} <= root_targets
    # auditors read instances and (root ones) hosts, too
    assert [i["name"] for i in api.instances(token=world.moi_auditor)] == ["moi-web"]
    api.get("/v1/hosts", token=world.root_auditor, expect=200)
    error(api.get("/v1/hosts", token=world.moi_auditor), 403, "auth.forbidden")


def test_agent_credentials_only_for_their_own_host(world: World) -> None:
    api, agent, other = world.api, world.agent, world.other_agent
    mine = next(a for a in (world.moi_vm, world.motc_vm) if a["host"] == agent.host_id)
    theirs = next(a for a in (world.moi_vm, world.motc_vm) if a["host"] == other.host_id)
    base = f"/v1/agent/hosts/{other.host_id}"
    calls = [
        (
            "POST",
            f"{base}/status",
            {"instances": [{"instance_id": theirs["id"], "state": "absent"}]},
        ),
        ("POST", f"{base}/heartbeat", {"capacity": {"vcpus": 1, "ram_mib": 1, "disk_gib": 1}}),
        ("GET", f"{base}/assignments", None),
    ]
    for method, path, body in calls:
        response = api.call(method, path, token=agent.credential, json=body)
        error(response, 403, "auth.forbidden")
    assert api.instance(theirs["id"])["state"] == "RUNNING"
    assert next(h for h in api.hosts() if h["id"] == other.host_id)["capacity"]["vcpus"] == 16

    # reporting about another host's instance through its own endpoint is ignored
    agent.report({"instance_id": theirs["id"], "state": "absent"})
    assert api.instance(theirs["id"])["state"] == "RUNNING"
    agent.status(mine["id"], "stopped")
    assert api.instance(mine["id"])["state"] == "STOPPED"

    # a user (even the platform admin) cannot pose as an agent
    error(api.get(f"{base}/assignments"), 403, "auth.forbidden")
    error(api.post(f"{base}/status", json={"instances": []}), 403, "auth.forbidden")


USER_ROUTES: list[tuple[str, str]] = [
    ("GET", "/v1/whoami"),
    ("GET", "/v1/instances"),
    ("GET", "/v1/instances/{vm}"),
    ("POST", "/v1/instances/{vm}/stop"),
    ("DELETE", "/v1/instances/{vm}"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/hosts"),
    ("GET", "/v1/flavors"),
    ("GET", "/v1/orgs"),
    ("GET", "/v1/users"),
    ("POST", "/v1/hosts/bootstrap-tokens"),
]


def test_agents_cannot_use_user_routes(world: World) -> None:
    for method, path in USER_ROUTES:
        response = world.api.call(
            method,
            path.format(vm=world.moi_vm["id"]),
            token=world.agent.credential,
            json={"datacentre": "tpe-1"} if method == "POST" else None,
        )
        body = error(response, 403, "auth.forbidden")
        assert "agent" in body["message"], (method, path)
    assert world.api.instance(world.moi_vm["id"])["state"] == "RUNNING"


def test_bootstrap_tokens_are_one_time(api: Api) -> None:
    token = api.bootstrap_token()
    api.register_host("tpe-h01", token=token)
    payload = {
        "bootstrap_token": token,
        "name": "tpe-h02",
        "capacity": {"vcpus": 4, "ram_mib": 8192, "disk_gib": 100},
        "libvirt_uri": "qemu:///system",
    }
    body = error(api.client.post("/v1/agent/register", json=payload), 401, "auth.unauthenticated")
    assert "unknown, used or expired" in body["message"]
    assert [h["name"] for h in api.hosts()] == ["tpe-h01"]
    # a registration refused for a duplicate name does not burn the token
    fresh = api.bootstrap_token()
    error(
        api.client.post(
            "/v1/agent/register", json=payload | {"bootstrap_token": fresh, "name": "tpe-h01"}
        ),
        409,
        "host.exists",
    )
    api.register_host("tpe-h02", token=fresh)


def test_bootstrap_tokens_expire(api: Api) -> None:
    token = api.bootstrap_token(ttl_hours=1)
    api.clock.advance(timedelta(minutes=59))
    still_good = api.bootstrap_token(ttl_hours=1)
    api.register_host("tpe-h01", token=still_good)
    api.clock.advance(timedelta(minutes=2))
    payload = {
        "bootstrap_token": token,
        "name": "tpe-h02",
        "capacity": {"vcpus": 4, "ram_mib": 8192, "disk_gib": 100},
        "libvirt_uri": "qemu:///system",
    }
    error(api.client.post("/v1/agent/register", json=payload), 401, "auth.unauthenticated")
    assert [h["name"] for h in api.hosts()] == ["tpe-h01"]


def test_bootstrap_tokens_are_platform_admin_only_and_bound_to_a_dc(api: Api) -> None:
    moi_admin = api.create_user("moi-admin", "ministry-admin", "moi")
    error(
        api.post("/v1/hosts/bootstrap-tokens", token=moi_admin, json={"datacentre": "tpe-1"}), 403
    )
    error(api.post("/v1/hosts/bootstrap-tokens", json={"datacentre": "nope"}), 404, "dc.not_found")
    api.create_dc("txg-1", "Taichung 1")
    agent = api.register_host("txg-h01", token=api.bootstrap_token("txg-1"))
    assert agent.datacentre == "txg-1"


def test_host_credentials_are_not_user_tokens(world: World) -> None:
    # A registration response's credential authenticates only as that host's agent.
    who = world.api.get("/v1/whoami", token=world.agent.credential)
    error(who, 403, "auth.forbidden")
    error(world.api.get("/v1/whoami", token=world.agent.credential + "x"), 401)
