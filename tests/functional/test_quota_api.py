"""Hierarchical quotas through the API, on SQLite and PostgreSQL (the ``api`` fixture).

The standard seed has gov -> motc -> thb -> traffic and gov -> moi -> nfa -> disaster.
Covered: show/set with headroom and percentages, the exact boundary, every violated level
listed with its numbers, parents capping children whose limits add up to more, unset =
unlimited, lowering below usage, exact release on delete (PENDING and placed), stop/start
not changing usage, soft-threshold events once per crossing, policy apply (dry-run diff,
apply, idempotent re-apply) and its file/line/field errors, verify/repair of drift, who
may read and set quotas, and that a refused create leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from controlplane.store.tables import InstanceActionRow, InstanceRow, QuotaNodeRow
from tests.api_helper import Agent, Api, error, fields_named

LARGE = {"instances": 1, "vcpus": 4, "ram_mib": 8192, "disk_gib": 80}  # m1.large
MEDIUM = {"instances": 1, "vcpus": 2, "ram_mib": 4096, "disk_gib": 40}  # m1.medium
NODES = ("gov", "motc", "thb", "traffic")


# -- helpers ---------------------------------------------------------------------------------


def report(api: Api, org: str, token: str | None = None, expect: int = 200) -> dict[str, Any]:
    """GET /v1/quotas/{org}."""
    kwargs: dict[str, Any] = {"token": token} if token else {}
    body: dict[str, Any] = api.get(f"/v1/quotas/{org}", expect=expect, **kwargs).json()
    return body


def node(api: Api, org: str) -> dict[str, Any]:
    """The node part of ``org``'s report."""
    found: dict[str, Any] = report(api, org)["node"]
    return found


def usage(api: Api, org: str) -> dict[str, int]:
    """``org``'s subtree usage as stored."""
    used: dict[str, int] = node(api, org)["usage"]
    return used


def set_limits(
    api: Api,
    org: str,
    limits: dict[str, int | None],
    *,
    soft_threshold: float | None = None,
    dry_run: bool = False,
    token: str | None = None,
    expect: int = 200,
) -> Any:
    """PATCH /v1/quotas/{org}; returns the body (the diff, or an error)."""
    body: dict[str, Any] = {"limits": limits}
    if soft_threshold is not None:
        body["soft_threshold"] = soft_threshold
    kwargs: dict[str, Any] = {"token": token} if token else {}
    return api.patch(
        f"/v1/quotas/{org}",
        json=body,
        params={"dry_run": str(dry_run).lower()},
        expect=expect,
        **kwargs,
    ).json()


def apply(api: Api, policy: str, *, dry_run: bool = False, expect: int = 200) -> Any:
    """POST /v1/quotas/apply with ``policy`` as the text of ``policy.yaml``."""
    return api.post(
        "/v1/quotas/apply",
        json={"policy": policy, "filename": "policy.yaml", "dry_run": dry_run},
        expect=expect,
    ).json()


def times(amount: dict[str, int], n: int) -> dict[str, int]:
    return {dim: value * n for dim, value in amount.items() if value * n}


def plus(*amounts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for amount in amounts:
        for dim, value in amount.items():
            out[dim] = out.get(dim, 0) + value
    return {dim: value for dim, value in out.items() if value}


def instance_rows(api: Api) -> int:
    with api.store.db.engine.connect() as conn:
        count: int = conn.scalar(select(func.count()).select_from(InstanceRow)) or 0
        return count


def action_rows(api: Api) -> int:
    with api.store.db.engine.connect() as conn:
        count: int = conn.scalar(select(func.count()).select_from(InstanceActionRow)) or 0
        return count


def big_host(api: Api, name: str = "tpe-h01") -> Agent:
    return api.register_host(name, vcpus=1024, ram_mib=4 * 1024 * 1024, disk_gib=200_000)


def absent(agent: Agent, instance_id: str) -> None:
    """The agent confirms the domain is gone."""
    agent.status(instance_id, "absent")


# -- show and set ----------------------------------------------------------------------------


def test_set_then_show_limits_usage_headroom_and_percentages(api: Api) -> None:
    big_host(api)
    diff = set_limits(api, "motc", {"instances": 10, "vcpus": 16, "ram_mib": 65536})
    assert [(c["org"], c["field"], c["old"], c["new"], c["used"]) for c in diff] == [
        ("motc", "instances", None, 10, 0),
        ("motc", "vcpus", None, 16, 0),
        ("motc", "ram_mib", None, 65536, 0),
    ]
    assert diff[1]["description"] == "motc: vcpus unlimited -> 16"
    set_limits(api, "thb", {"vcpus": 8})
    for i in range(2):
        api.create_instance(f"web-{i}", "traffic", "m1.large")

    shown = report(api, "motc")
    motc = shown["node"]
    assert (motc["org"], motc["kind"], motc["path"]) == ("motc", "ministry", "gov/motc")
    assert motc["limits"] == {"instances": 10, "vcpus": 16, "ram_mib": 65536}  # unset: absent
    assert motc["usage"] == times(LARGE, 2)
    # the ministry has 8 vCPUs left, but its only agency is full: one more request here
    # may take no vCPU at all (headroom is the least room left on the way to the root)
    assert motc["headroom"] == {
        "instances": 8,
        "vcpus": 8,
        "ram_mib": 65536 - 16384,
        "disk_gib": None,
        "trial_envs": None,
    }
    assert motc["percent_used"] == {"instances": 20.0, "vcpus": 50.0, "ram_mib": 25.0}
    assert motc["over_limit"] == []
    assert motc["over_soft_threshold"] == []
    assert motc["soft_threshold"] == 0.8

    [thb] = shown["children"]
    assert (thb["org"], thb["kind"], thb["limits"]) == ("thb", "agency", {"vcpus": 8})
    assert thb["usage"] == times(LARGE, 2)
    assert thb["headroom"]["vcpus"] == 0
    assert thb["headroom"]["instances"] == 8  # capped by the ministry above it
    assert thb["percent_used"] == {"vcpus": 100.0}
    assert thb["over_soft_threshold"] == ["vcpus"]
    assert thb["over_limit"] == []  # exactly at the limit is not over it

    traffic = node(api, "traffic")
    assert traffic["limits"] == {}
    assert traffic["headroom"]["vcpus"] == 0
    assert traffic["headroom"]["disk_gib"] is None

    root = report(api, "gov")
    assert [c["org"] for c in root["children"]] == ["moi", "motc"]
    assert root["node"]["usage"] == times(LARGE, 2)
    assert root["node"]["headroom"] == dict.fromkeys(
        ("instances", "vcpus", "ram_mib", "disk_gib", "trial_envs")
    )


def test_set_changes_only_the_named_limits_and_dry_run_changes_nothing(api: Api) -> None:
    set_limits(api, "motc", {"vcpus": 16, "instances": 10})
    planned = set_limits(api, "motc", {"vcpus": 32}, soft_threshold=0.9, dry_run=True)
    assert [(c["field"], c["old"], c["new"]) for c in planned] == [
        ("vcpus", 16, 32),
        ("soft_threshold", 0.8, 0.9),
    ]
    assert node(api, "motc")["limits"] == {"vcpus": 16, "instances": 10}
    assert set_limits(api, "motc", {"vcpus": 32}, soft_threshold=0.9) == planned
    assert node(api, "motc")["limits"] == {"vcpus": 32, "instances": 10}
    assert node(api, "motc")["soft_threshold"] == 0.9
    assert set_limits(api, "motc", {"vcpus": 32}) == []  # already so


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"limits": {"vcpus": -1}}, 400, "limits"),
        ({"limits": {"cpus": 4}}, 400, "limits"),
        ({"limits": {"vcpus": 4}, "soft_threshold": 1.5}, 422, "soft_threshold"),
        ({"limits": {"vcpus": 4}, "soft_threshold": 0}, 422, "soft_threshold"),
        ({"limit": {"vcpus": 4}}, 422, "limit"),  # a typo is not "no change"
        ({"limits": {"vcpus": True}}, 422, "limits.vcpus"),
        ({"limits": {"vcpus": "5"}}, 422, "limits.vcpus"),
        ({"limits": {"vcpus": 4.0}}, 422, "limits.vcpus"),
    ],
)
def test_invalid_limits_are_refused_naming_the_field(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    found = error(api.patch("/v1/quotas/motc", json=body), status)
    if status == 422:
        assert fields_named(found) == {field}, found
    else:
        assert found["details"]["field"] == field, found
    assert node(api, "motc")["limits"] == {}


def test_unknown_org_is_not_found(api: Api) -> None:
    error(api.get("/v1/quotas/nope"), 404, "org.not_found")
    error(api.patch("/v1/quotas/nope", json={"limits": {"vcpus": 1}}), 404, "org.not_found")


# -- enforcement -----------------------------------------------------------------------------


def test_exact_boundary_and_the_violation_message(api: Api) -> None:
    big_host(api)
    api.create_flavor("x255", 255, 512, 1)
    set_limits(api, "motc", {"vcpus": 512})
    for i in range(2):
        api.create_instance(f"big-{i}", "traffic", "x255")
    assert usage(api, "motc")["vcpus"] == 510

    refused = error(
        api.post(
            "/v1/instances",
            json={
                "name": "one-more",
                "project": "traffic",
                "flavor": "m1.large",
                "image": "cirros",
            },
        ),
        403,
        "quota.exceeded",
    )
    assert "ministry motc: vcpus 510 used + 4 requested > limit 512" in refused["message"]
    assert refused["details"]["violations"] == [
        {
            "node": "motc",
            "kind": "ministry",
            "dimension": "vcpus",
            "used": 510,
            "requested": 4,
            "limit": 512,
            "message": "ministry motc: vcpus 510 used + 4 requested > limit 512",
        }
    ]
    assert usage(api, "motc")["vcpus"] == 510

    api.create_instance("exactly-full", "traffic", "m1.medium")  # 510 + 2 == 512: allowed
    assert usage(api, "motc")["vcpus"] == 512
    assert node(api, "motc")["headroom"]["vcpus"] == 0
    assert node(api, "motc")["percent_used"]["vcpus"] == 100.0
    refused = api.create_instance("past-full", "traffic", "m1.tiny", expect=403)
    assert "ministry motc: vcpus 512 used + 1 requested > limit 512" in refused["message"]


def test_every_violated_level_is_listed_root_first_with_its_numbers(api: Api) -> None:
    big_host(api)
    set_limits(api, "gov", {"vcpus": 1000})
    set_limits(api, "motc", {"vcpus": 4})
    set_limits(api, "thb", {"vcpus": 4, "ram_mib": 100_000})
    set_limits(api, "traffic", {"vcpus": 4, "instances": 1})
    api.create_instance("first", "traffic", "m1.small")  # 1 vCPU, 1 instance

    refused = api.create_instance("second", "traffic", "m1.large", expect=403)
    assert [
        (v["node"], v["kind"], v["dimension"], v["used"], v["requested"], v["limit"])
        for v in refused["details"]["violations"]
    ] == [
        ("motc", "ministry", "vcpus", 1, 4, 4),
        ("thb", "agency", "vcpus", 1, 4, 4),
        ("traffic", "project", "instances", 1, 1, 1),
        ("traffic", "project", "vcpus", 1, 4, 4),
    ]
    for text in (
        "ministry motc: vcpus 1 used + 4 requested > limit 4",
        "agency thb: vcpus 1 used + 4 requested > limit 4",
        "project traffic: instances 1 used + 1 requested > limit 1",
        "project traffic: vcpus 1 used + 4 requested > limit 4",
    ):
        assert text in refused["message"]
    assert "gov" not in {v["node"] for v in refused["details"]["violations"]}


def test_parent_caps_its_subtree_even_when_child_limits_add_up_to_more(api: Api) -> None:
    big_host(api)
    api.create_org("rail", "motc")
    api.create_org("metro", "rail")
    set_limits(api, "motc", {"vcpus": 8})
    for org in ("thb", "rail", "traffic", "metro"):
        set_limits(api, org, {"vcpus": 100})  # 200 per agency level: the ministry caps at 8
    for i, project in enumerate(["traffic", "metro", "traffic", "metro"]):
        api.create_instance(f"vm-{i}", project, "m1.medium")
    assert usage(api, "thb")["vcpus"] == usage(api, "rail")["vcpus"] == 4
    assert usage(api, "motc")["vcpus"] == 8

    for project in ("traffic", "metro"):
        refused = api.create_instance("too-many", project, "m1.small", expect=403)
        assert [v["node"] for v in refused["details"]["violations"]] == ["motc"]
        assert "ministry motc: vcpus 8 used + 1 requested > limit 8" in refused["message"]
    # the other ministry is not affected by motc's limit
    api.create_instance("moi-vm", "disaster", "m1.large")


def test_unset_limits_are_unlimited_and_null_removes_a_limit(api: Api) -> None:
    big_host(api)
    for i in range(6):
        api.create_instance(f"vm-{i}", "traffic", "m1.large")  # no limits anywhere
    set_limits(api, "thb", {"vcpus": 24, "instances": 100})
    api.create_instance("blocked", "traffic", "m1.large", expect=403)

    diff = set_limits(api, "thb", {"vcpus": None})
    assert [(c["field"], c["old"], c["new"]) for c in diff] == [("vcpus", 24, None)]
    assert diff[0]["description"] == "thb: vcpus 24 -> unlimited"
    thb = node(api, "thb")
    assert thb["limits"] == {"instances": 100}
    assert thb["headroom"]["vcpus"] is None
    assert "vcpus" not in thb["percent_used"]
    api.create_instance("allowed", "traffic", "m1.large")
    assert usage(api, "thb") == times(LARGE, 7)


def test_lowering_a_limit_below_usage_is_allowed_flagged_and_blocks_new_usage(api: Api) -> None:
    agent = big_host(api)
    made = [api.create_instance(f"vm-{i}", "traffic", "m1.medium") for i in range(3)]
    agent.converge()
    planned = set_limits(api, "thb", {"vcpus": 4}, dry_run=True)
    assert planned == [
        {
            "org": "thb",
            "field": "vcpus",
            "old": None,
            "new": 4,
            "used": 6,
            "below_usage": True,
            "description": "thb: vcpus unlimited -> 4 (below current usage 6: blocks new usage)",
        }
    ]
    assert node(api, "thb")["limits"] == {}
    assert set_limits(api, "thb", {"vcpus": 4}) == planned

    thb = node(api, "thb")
    assert thb["over_limit"] == ["vcpus"]
    assert thb["percent_used"] == {"vcpus": 150.0}
    assert thb["headroom"]["vcpus"] == 0
    assert "vcpus" in thb["over_soft_threshold"]
    # running servers keep running (stop/start are not new usage) ...
    api.act(made[0]["id"], "stop")
    agent.converge()
    api.act(made[0]["id"], "start")
    agent.converge()
    assert api.instance(made[0]["id"])["state"] == "RUNNING"
    # ... but nothing new is accepted while usage is above the limit
    refused = api.create_instance("new", "traffic", "m1.tiny", expect=403)
    assert "agency thb: vcpus 6 used + 1 requested > limit 4" in refused["message"]

    api.act(made[1]["id"], "delete")
    absent(agent, made[1]["id"])
    assert usage(api, "thb")["vcpus"] == 4
    assert node(api, "thb")["over_limit"] == []
    api.create_instance("still-full", "traffic", "m1.tiny", expect=403)
    api.act(made[2]["id"], "delete")
    absent(agent, made[2]["id"])
    api.create_instance("fits-again", "traffic", "m1.medium")
    assert usage(api, "thb")["vcpus"] == 4


def test_delete_releases_exactly_what_was_charged_pending_and_placed(api: Api) -> None:
    # room for one m1.large and one m1.small (RAM: 512 MiB reserved), so the medium waits
    agent = api.register_host("tpe-h01", vcpus=16, ram_mib=512 + 8192 + 1024, disk_gib=500)
    api.create_instance("small", "disaster", "m1.small")  # other ministry: not in motc
    placed = api.create_instance("placed", "traffic", "m1.large")
    waiting = api.create_instance("waiting", "traffic", "m1.medium")
    assert placed["state"] == "SCHEDULED"
    assert waiting["state"] == "PENDING"
    agent.converge()
    small = {"instances": 1, "vcpus": 1, "ram_mib": 1024, "disk_gib": 10}
    for org in ("motc", "thb", "traffic"):
        assert usage(api, org) == plus(LARGE, MEDIUM), org  # PENDING counts too
    assert usage(api, "gov") == plus(LARGE, MEDIUM, small)

    api.act(waiting["id"], "delete")  # never placed: released at once
    for org in ("motc", "thb", "traffic"):
        assert usage(api, org) == LARGE, org
    assert usage(api, "gov") == plus(LARGE, small)

    deleting = api.act(placed["id"], "delete")
    assert deleting["state"] == "DELETING"
    assert usage(api, "traffic") == LARGE  # held until the agent confirms
    agent.converge()  # the agent removes the domain and reports it absent
    assert api.instance(placed["id"])["state"] == "DELETED"
    for org in ("motc", "thb", "traffic"):
        assert usage(api, org) == {}, org
    assert usage(api, "gov") == small
    assert usage(api, "moi") == small
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []


def test_stop_start_and_reboot_do_not_change_usage(api: Api) -> None:
    agent = big_host(api)
    inst = api.create_instance("web", "traffic", "m1.large")
    agent.converge()
    assert api.instance(inst["id"])["state"] == "RUNNING"
    before = {org: usage(api, org) for org in NODES}
    assert before["traffic"] == LARGE
    for action, state in (("stop", "STOPPED"), ("start", "RUNNING"), ("reboot", "RUNNING")):
        api.act(inst["id"], action)
        agent.converge()
        assert api.instance(inst["id"])["state"] == state
        assert {org: usage(api, org) for org in NODES} == before, action


def test_a_pending_request_counts_from_acceptance(api: Api) -> None:
    set_limits(api, "traffic", {"instances": 1})
    first = api.create_instance("first", "traffic", "m1.tiny")  # no hosts: PENDING
    assert first["state"] == "PENDING"
    assert usage(api, "traffic")["instances"] == 1
    refused = api.create_instance("second", "traffic", "m1.tiny", expect=403)
    assert "project traffic: instances 1 used + 1 requested > limit 1" in refused["message"]


def test_soft_threshold_event_is_recorded_once_per_crossing(api: Api) -> None:
    agent = big_host(api)
    set_limits(api, "motc", {"instances": 10}, soft_threshold=0.5)
    made = [api.create_instance(f"vm-{i}", "traffic", "m1.tiny") for i in range(4)]
    assert api.get("/v1/quotas/motc/events", expect=200).json() == []
    made += [api.create_instance(f"vm-{i}", "traffic", "m1.tiny") for i in range(4, 8)]

    events = api.get("/v1/quotas/motc/events", expect=200).json()
    assert len(events) == 1, events
    [event] = events
    assert (event["org"], event["kind"], event["dimension"]) == ("motc", "ministry", "instances")
    assert (event["used"], event["limit"]) == (5, 10)
    assert (
        "ministry motc: instances 4 used + 1 requested = 5 >= 50% of limit 10" in (event["message"])
    )
    assert made[4]["id"] in event["message"]  # the request that crossed it
    assert api.get("/v1/quotas/gov/events", expect=200).json() == events
    assert api.get("/v1/quotas/thb/events", expect=200).json() == []  # not thb's subtree
    assert node(api, "motc")["over_soft_threshold"] == ["instances"]

    # back below the threshold, then across it again: a second event
    agent.converge()
    for inst in made[4:]:
        api.act(inst["id"], "delete")
        absent(agent, inst["id"])
    assert node(api, "motc")["over_soft_threshold"] == []
    api.create_instance("again", "traffic", "m1.tiny")
    events = api.get("/v1/quotas/motc/events", expect=200).json()
    assert [e["used"] for e in events] == [5, 5]
    assert events[0]["id"] > events[1]["id"]  # newest first


# -- policy files ----------------------------------------------------------------------------

POLICY = """\
description: test policy
classes:
  ministry-test:
    limits: {instances: 100, vcpus: 64}
assignments:
  - {org: motc, class: ministry-test}
  - {org: thb, class: agency-small, limits: {vcpus: 32}}
  - {org: traffic, limits: {instances: 5}, soft_threshold: 0.5}
  - {org: moi, class: ministry-standard}
"""


def test_apply_shows_the_diff_applies_and_is_idempotent(api: Api) -> None:
    big_host(api)
    set_limits(api, "motc", {"ram_mib": 1024 * 1024})  # not in the class: made unlimited
    for i in range(3):
        api.create_instance(f"vm-{i}", "traffic", "m1.large")

    planned = apply(api, POLICY, dry_run=True)
    assert report(api, "thb")["node"]["limits"] == {}  # a dry run changes nothing
    got = [(c["org"], c["field"], c["old"], c["new"]) for c in planned]
    assert got == [
        ("motc", "instances", None, 100),
        ("motc", "vcpus", None, 64),
        ("motc", "ram_mib", 1024 * 1024, None),
        ("thb", "instances", None, 50),
        ("thb", "vcpus", None, 32),
        ("thb", "ram_mib", None, 262144),
        ("thb", "disk_gib", None, 5120),
        ("thb", "trial_envs", None, 2),
        ("traffic", "instances", None, 5),
        ("traffic", "soft_threshold", 0.8, 0.5),
        ("moi", "instances", None, 500),
        ("moi", "vcpus", None, 512),
        ("moi", "ram_mib", None, 2097152),
        ("moi", "disk_gib", None, 51200),
        ("moi", "trial_envs", None, 10),
    ]
    assert planned[1]["used"] == 12  # motc's usage is shown with its new limit
    assert not any(c["below_usage"] for c in planned)

    assert apply(api, POLICY) == planned
    assert node(api, "motc")["limits"] == {"instances": 100, "vcpus": 64}
    assert node(api, "thb")["limits"] == {
        "instances": 50,
        "vcpus": 32,
        "ram_mib": 262144,
        "disk_gib": 5120,
        "trial_envs": 2,
    }
    assert node(api, "traffic")["soft_threshold"] == 0.5
    assert node(api, "nfa")["limits"] == {}  # not named: untouched

    assert apply(api, POLICY, dry_run=True) == []
    assert apply(api, POLICY) == []

    # a changed line changes exactly that field; lowering below usage is flagged
    changed = apply(api, POLICY.replace("{instances: 5}", "{instances: 2}"))
    assert changed == [
        {
            "org": "traffic",
            "field": "instances",
            "old": 5,
            "new": 2,
            "used": 3,
            "below_usage": True,
            "description": "traffic: instances 5 -> 2 (below current usage 3: blocks new usage)",
        }
    ]
    api.create_instance("blocked", "traffic", "m1.tiny", expect=403)

    # only the real apply is audited
    applies = [e for e in api.audit() if e["action"] == "quota.apply"]
    assert len(applies) == 3, applies


BAD_POLICIES = [
    pytest.param(
        "classes:\n  c1:\n    limits: {cpus: 4}\n",
        [(3, "classes.c1.limits.cpus", "unknown dimension 'cpus'")],
        id="unknown-dimension",
    ),
    pytest.param(
        "assignments:\n  - {org: motc, limits: {vcpus: 4}}\n  - {org: thb, limits: {vcpus: -1}}\n",
        [(3, "assignments[1].limits.vcpus", "must be a non-negative integer, got -1")],
        id="negative-amount",
    ),
    pytest.param(
        "assignments:\n  - org: motc\n    class: no-such-class\n",
        [(2, "assignments[0].class", "unknown class 'no-such-class'")],
        id="unknown-class",
    ),
    pytest.param(
        "assignments:\n  - {org: motc, limits: {vcpus: 4}}\n"
        "  - {org: atlantis, limits: {vcpus: 4}}\n",
        [(3, "assignments[1].org", "unknown organisation 'atlantis'")],
        id="unknown-org",
    ),
    pytest.param(
        "classes:\n  c1:\n    limits: {vcpus: 4}\n    soft_threshold: 2\n"
        "  c2:\n    limits: {vcpus: many}\n    colour: red\n",
        [
            (4, "classes.c1.soft_threshold", "must be a number in (0, 1]"),
            (6, "classes.c2.limits.vcpus", "must be a non-negative integer, got 'many'"),
            (7, "classes.c2.colour", "unknown field"),
        ],
        id="every-problem",
    ),
    pytest.param(
        "assignments:\n  - {org: motc\n  - {org: thb}\n",
        [(3, "", "invalid YAML")],
        id="bad-yaml",
    ),
    pytest.param("# nothing here\n", [(1, "", "empty policy file")], id="empty"),
]


@pytest.mark.parametrize(("policy", "problems"), BAD_POLICIES)
def test_bad_policy_files_name_file_line_and_field(
    api: Api, policy: str, problems: list[tuple[int, str, str]]
) -> None:
    for dry_run in (True, False):
        body = error(
            api.post(
                "/v1/quotas/apply",
                json={"policy": policy, "filename": "policies/p.yaml", "dry_run": dry_run},
            ),
            400,
            "quota.policy_invalid",
        )
        found = body["details"]["problems"]
        assert [(p["file"], p["line"], p["field"]) for p in found] == [
            ("policies/p.yaml", line, field) for line, field, _ in problems
        ], found
        for problem, (line, field, text) in zip(found, problems, strict=True):
            assert text in problem["message"], problem
            where = f"policies/p.yaml:{line}:" + (f" field '{field}':" if field else "")
            assert where in body["message"], body["message"]
    assert node(api, "motc")["limits"] == {}  # nothing applied


def test_apply_is_for_platform_admins(api: Api) -> None:
    admin = api.create_user("motc-admin", "ministry-admin", "motc")
    response = api.post("/v1/quotas/apply", json={"policy": POLICY, "dry_run": True}, token=admin)
    error(response, 403, "auth.forbidden")


# -- verify ----------------------------------------------------------------------------------


def corrupt(api: Api, org: str, stored: dict[str, int]) -> None:
    """Overwrite ``org``'s stored usage behind the store's back."""
    with api.store.db.engine.begin() as conn:
        conn.execute(update(QuotaNodeRow).where(QuotaNodeRow.org == org).values(usage=stored))


def test_verify_finds_no_drift_normally_then_detects_and_repairs_it(api: Api) -> None:
    agent = big_host(api)
    made = [api.create_instance(f"vm-{i}", "traffic", "m1.large") for i in range(3)]
    api.create_instance("moi-vm", "disaster", "m1.medium")
    api.act(made[0]["id"], "delete")
    agent.converge()
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []

    set_limits(api, "thb", {"vcpus": 8})  # full: 2 x 4 vCPU
    corrupt(api, "thb", {"instances": 1})  # as if charges had been lost
    corrupt(api, "moi", {"vcpus": 99})
    drifts = api.post("/v1/quotas/verify", json={}, expect=200).json()
    assert drifts == [
        {"org": "moi", "stored": {"vcpus": 99}, "actual": MEDIUM, "repaired": False},
        {"org": "thb", "stored": {"instances": 1}, "actual": times(LARGE, 2), "repaired": False},
    ]
    assert usage(api, "thb") == {"instances": 1}  # reported, not repaired
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == drifts

    repaired = api.post("/v1/quotas/verify", json={"repair": True}, expect=200).json()
    assert repaired == [d | {"repaired": True} for d in drifts]
    assert usage(api, "thb") == times(LARGE, 2)
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []
    # the repaired numbers are enforced again
    refused = api.create_instance("after-repair", "traffic", "m1.tiny", expect=403)
    assert "agency thb: vcpus 8 used + 1 requested > limit 8" in refused["message"]


def test_verify_is_scoped_to_the_caller(api: Api) -> None:
    big_host(api)
    api.create_instance("vm", "traffic", "m1.large")
    auditor = api.create_user("moi-auditor", "auditor", "moi")
    corrupt(api, "thb", {})
    assert api.post("/v1/quotas/verify", json={}, token=auditor, expect=200).json() == []
    drifts = api.post("/v1/quotas/verify", json={}, expect=200).json()
    assert [d["org"] for d in drifts] == ["thb"]


# -- authorisation ---------------------------------------------------------------------------


def test_who_may_read_and_set_quotas(api: Api) -> None:
    motc_admin = api.create_user("motc-admin", "ministry-admin", "motc")
    motc_auditor = api.create_user("motc-auditor", "auditor", "motc")
    member = api.create_user("traffic-dev", "member", "traffic")

    # a ministry-admin sets its agencies and projects, not its own ministry's cap
    assert set_limits(api, "thb", {"vcpus": 64}, token=motc_admin)
    assert set_limits(api, "traffic", {"vcpus": 32}, token=motc_admin)
    denied = set_limits(api, "motc", {"vcpus": 10_000}, token=motc_admin, expect=403)
    assert denied["code"] == "auth.forbidden"
    assert "limits are set by the level above" in denied["message"]
    assert node(api, "motc")["limits"] == {}
    # ... and cannot see other ministries' quotas, nor the root's (no existence leak)
    for org in ("moi", "nfa", "disaster", "gov"):
        error(api.get(f"/v1/quotas/{org}", token=motc_admin), 404, "org.not_found")
        error(api.get(f"/v1/quotas/{org}/events", token=motc_admin), 404, "org.not_found")
        set_limits(api, org, {"vcpus": 1}, token=motc_admin, expect=404)
    assert report(api, "motc", token=motc_admin)["node"]["org"] == "motc"

    # auditors read, never write
    assert report(api, "thb", token=motc_auditor)["node"]["limits"] == {"vcpus": 64}
    api.get("/v1/quotas/motc/events", token=motc_auditor, expect=200)
    for org in ("thb", "traffic"):
        denied = set_limits(api, org, {"vcpus": 1}, token=motc_auditor, expect=403)
        assert denied["code"] == "auth.forbidden"
    api.post("/v1/quotas/verify", json={}, token=motc_auditor, expect=200)
    error(
        api.post("/v1/quotas/verify", json={"repair": True}, token=motc_auditor),
        403,
        "auth.forbidden",
    )
    error(api.post("/v1/quotas/verify", json={"repair": True}, token=motc_admin), 403)

    # members see their own project's quota and set nothing
    assert report(api, "traffic", token=member)["node"]["limits"] == {"vcpus": 32}
    error(api.get("/v1/quotas/thb", token=member), 404, "org.not_found")
    denied = set_limits(api, "traffic", {"vcpus": 1000}, token=member, expect=403)
    assert denied["code"] == "auth.forbidden"
    error(api.post("/v1/quotas/verify", json={}, token=member), 403, "auth.forbidden")
    assert node(api, "traffic")["limits"] == {"vcpus": 32}


def test_a_refused_create_leaves_nothing_half_created(api: Api) -> None:
    big_host(api)
    set_limits(api, "thb", {"vcpus": 4})
    api.create_instance("fits", "traffic", "m1.large")
    usage_before = {org: usage(api, org) for org in NODES}
    hosts_before = api.hosts()
    rows_before, actions_before = instance_rows(api), action_rows(api)

    member = api.create_user("traffic-dev", "member", "traffic")
    for token in (None, member):
        kwargs: dict[str, Any] = {"token": token} if token else {}
        api.create_instance("refused", "traffic", "m1.small", expect=403, **kwargs)

    assert instance_rows(api) == rows_before
    assert action_rows(api) == actions_before
    assert api.instances(name="refused") == []
    assert api.instances(name="refused", state="DELETED") == []
    assert {org: usage(api, org) for org in NODES} == usage_before
    assert api.hosts() == hosts_before
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []
    refusals = [
        e for e in api.audit() if e["action"] == "instance.create" and e["status_code"] == 403
    ]
    assert len(refusals) == 2, refusals
