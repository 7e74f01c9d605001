"""Consolidation for energy through the API (``/v1/datacentres/{code}/consolidation``), on
SQLite and PostgreSQL (the ``api`` fixture), with agents simulated over ``/v1/agent``
carrying out the live migrations, and the consolidation loop run by hand.

Shown: the dry run's moves, hosts freed and watts; host power models and their
validation; execution with a concurrency limit that powers the emptied hosts down
(MAINTENANCE, noted); pause after some steps, then resume finishes the same plan (the
same final placement); a restarted control plane carries on; a step whose target no
longer fits is skipped with the reason, never overcommitting; conflicts are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tests.api_helper import Agent, Api, error, fields_named
from tests.functional.fleet_helpers import migration_agent_pass

PLAN = "/v1/datacentres/tpe-1/consolidation/plan"
RUN = "/v1/datacentres/tpe-1/consolidation"


def fleet(api: Api, hosts: int = 4, servers: int = 4) -> list[Agent]:
    """``hosts`` hosts of 16 vCPU / 32 GiB with ``servers`` m1.small servers spread over
    them (the data centre's policy is spread), all RUNNING."""
    agents = [api.register_host(f"tpe-1-h{i:02d}") for i in range(1, hosts + 1)]
    for n in range(servers):
        api.create_instance(f"app-{n:02d}")
    for agent in agents:
        agent.converge()
    assert {i["state"] for i in api.instances()} == {"RUNNING"}
    return agents


def placement(api: Api) -> dict[str, str]:
    return {i["name"]: i["host_name"] for i in api.instances()}


def hosts(api: Api) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in api.get("/v1/hosts", expect=200).json()}


def tick(api: Api, agents: list[Agent]) -> dict[str, Any]:
    """One consolidation pass, then every agent carries out its migration orders."""
    api.app.state.consolidation.run_once()
    for agent in agents:
        migration_agent_pass(agent)
    body: dict[str, Any] = api.get(RUN, expect=200).json()
    return body


def run_to_end(api: Api, agents: list[Agent], limit: int = 40) -> dict[str, Any]:
    for _ in range(limit):
        status = tick(api, agents)
        if status["state"] not in ("running", "paused"):
            return status
    raise AssertionError(f"consolidation did not finish: {status}")


def expected(before: dict[str, str], moves: list[dict[str, Any]]) -> dict[str, str]:
    after = dict(before)
    for move in moves:
        assert after[move["instance_name"]] == move["source"]
        after[move["instance_name"]] = move["target"]
    return after


def test_dry_run_shows_plan_and_watts_and_power_models_are_validated(api: Api) -> None:
    fleet(api)
    patched = api.patch(
        "/v1/hosts/tpe-1-h01", json={"idle_watts": 120, "peak_watts": 380}, expect=200
    ).json()
    assert (patched["idle_watts"], patched["peak_watts"]) == (120, 380)
    # One side at a time once a model exists; the other side is kept.
    assert (
        api.patch("/v1/hosts/tpe-1-h01", json={"peak_watts": 400}, expect=200).json()["idle_watts"]
        == 120
    )

    plan = api.post(PLAN, json={}, expect=200).json()
    # 4 one-server hosts: 3 emptied, 1 kept as the spare (reserve 1), 2 powered off.
    assert len(plan["freed"]) == 2
    assert len(plan["spares"]) == 1
    assert len(plan["moves"]) == 3
    assert plan["watts_saved"] > 0
    assert round(plan["watts_before"] - plan["watts_after"], 1) == plan["watts_saved"]
    assert plan["kwh_month_saved"] == round(plan["watts_saved"] * 730 / 1000, 1)
    assert "tpe-1-h01" not in plan["power_estimated_hosts"]
    assert len(plan["power_estimated_hosts"]) == 3
    assert set(plan["not_freed"]) == {"tpe-1-h01", "tpe-1-h02", "tpe-1-h03", "tpe-1-h04"} - set(
        plan["freed"]
    )
    assert plan["baseline_freed"] <= len(plan["freed"])
    # A dry run writes nothing.
    assert {h["state"] for h in hosts(api).values()} == {"active"}
    error(api.get(RUN), 404, "consolidation.not_found")
    # Reserve 0 frees one more; max-fill caps receivers.
    assert len(api.post(PLAN, json={"reserve": 0}, expect=200).json()["freed"]) == 3

    bad = error(api.post(PLAN, json={"max_fill": 1.5, "reserve": -1}), 422, "request.invalid")
    assert fields_named(bad) == {"max_fill", "reserve"}
    limits = {p["field"]: p.get("limit") for p in bad["details"]["errors"]}
    assert limits["max_fill"] == {"le": 1.0}
    bad = error(api.patch("/v1/hosts/tpe-1-h02", json={"idle_watts": 300, "peak_watts": 200}), 422)
    assert fields_named(bad) == {"peak_watts"}
    assert bad["details"]["errors"][0]["value"] == 200
    missing = error(api.patch("/v1/hosts/tpe-1-h02", json={"idle_watts": 100}), 400)
    assert missing["details"]["field"] == "peak_watts"
    error(api.post("/v1/datacentres/nowhere/consolidation/plan", json={}), 404, "dc.not_found")
    member = api.create_user("alice", "member", "disaster")
    error(api.post(PLAN, json={}, token=member), 403, "auth.forbidden")
    error(api.post(RUN, json={}, token=member), 403, "auth.forbidden")


def test_execute_pause_resume_finishes_the_same_plan(api: Api) -> None:
    agents = fleet(api, hosts=5, servers=5)
    before = placement(api)
    dry = api.post(PLAN, json={"reserve": 1}, expect=200).json()
    started = api.post(RUN, json={"reserve": 1, "max_parallel": 1}, expect=202).json()
    assert started["state"] == "running"
    assert started["plan"]["moves"] == dry["moves"]
    assert started["total"] == len(dry["moves"]) == 4
    emptied = {h["name"] for h in started["hosts"]}
    assert emptied == set(dry["freed"]) | {m["source"] for m in dry["moves"]}
    # The hosts being emptied take no new placements.
    states = {n: h["state"] for n, h in hosts(api).items()}
    assert all(states[n] == "draining" for n in emptied)

    for _ in range(10):  # until the first move is done
        status = tick(api, agents)
        assert status["in_flight"] <= 1  # --max-parallel 1
        if status["done"]:
            break
    assert status["done"] == 1
    paused = api.post(f"{RUN}/pause", expect=200).json()
    assert paused["state"] == "paused"
    for _ in range(3):
        status = tick(api, agents)
    assert status["state"] == "paused"
    assert status["in_flight"] == 0
    done_while_paused = status["done"]
    assert done_while_paused < status["total"]
    assert tick(api, agents)["done"] == done_while_paused  # nothing new starts

    assert api.post(f"{RUN}/resume", expect=200).json()["state"] == "running"
    final = run_to_end(api, agents)
    assert final["state"] == "done"
    assert (final["done"], final["skipped"], final["failed"]) == (4, 0, 0)
    assert final["powered_down"] == len(dry["freed"]) == 3
    assert placement(api) == expected(before, dry["moves"])
    after = hosts(api)
    for name in dry["freed"]:
        assert after[name]["state"] == "maintenance"
        assert after[name]["state_note"] == f"powered down for consolidation {final['id']}"
        assert after[name]["used"] == {"vcpus": 0, "ram_mib": 0, "disk_gib": 0}
    for name in dry["spares"]:
        assert after[name]["state"] == "active"
        assert after[name]["used"]["vcpus"] == 0
    # Never above usable on any host.
    for h in after.values():
        assert h["used"]["vcpus"] <= 4 * 16
        assert h["used"]["ram_mib"] <= 32768 - 512
    actions = [e["action"] for e in api.audit()]
    for name in ("dc.consolidate", "dc.consolidation_pause", "dc.consolidation_resume"):
        assert name in actions
    listed = api.get("/v1/consolidations", params={"datacentre": "tpe-1"}, expect=200).json()
    assert [c["id"] for c in listed] == [final["id"]]


def test_a_restarted_control_plane_carries_on(
    seeded_url: str, api_factory: Callable[..., Api]
) -> None:
    first = api_factory(seeded_url, migrate=False)
    agents = fleet(first, hosts=4, servers=4)
    before = placement(first)
    started = first.post(RUN, json={"max_parallel": 1}, expect=202).json()
    tick(first, agents)
    first.close()

    second = api_factory(seeded_url, migrate=False)
    moved = [dataclasses.replace(a, api=second) for a in agents]
    final = run_to_end(second, moved)
    assert final["id"] == started["id"]
    assert final["state"] == "done"
    assert placement(second) == expected(before, started["plan"]["moves"])


def test_a_step_whose_target_changed_is_skipped_never_overcommitting(api: Api) -> None:
    agents = fleet(api, hosts=3, servers=3)
    started = api.post(RUN, json={"reserve": 0, "max_parallel": 1}, expect=202).json()
    moves = started["plan"]["moves"]
    assert len(moves) == 2
    target = moves[0]["target"]
    # The operator takes the receiving host out before anything starts.
    api.patch(f"/v1/hosts/{target}", json={"state": "maintenance"}, expect=200)
    final = run_to_end(api, agents)
    assert final["skipped"] == 2
    assert final["done"] == 0
    assert f"target {target} is maintenance" in final["steps"][0]["message"]
    assert (
        "cannot be emptied" in final["steps"][1]["message"]
        or "maintenance" in (final["steps"][1]["message"])
    )
    assert final["powered_down"] == 0
    states = {n: h["state"] for n, h in hosts(api).items()}
    for host in final["hosts"]:
        assert host["outcome"] == "kept-on"
        assert states[host["name"]] == "active"  # given back
        assert hosts(api)[host["name"]]["state_note"] is None


def test_conflicts_are_refused(api: Api) -> None:
    agents = fleet(api, hosts=3, servers=3)
    error(api.post(f"{RUN}/pause"), 409, "consolidation.not_open")
    api.post(f"/v1/hosts/{agents[0].name}/drain", json={}, expect=202)
    body = error(api.post(RUN, json={}), 409, "consolidation.drain_conflict")
    assert agents[0].name in body["message"]
    api.post(f"/v1/hosts/{agents[0].name}/undrain", expect=200)
    api.post(RUN, json={"reserve": 0}, expect=202)
    body = error(api.post(RUN, json={}), 409, "consolidation.running")
    assert "--show" in body["message"]
    cancelled = api.post(f"{RUN}/cancel", expect=200).json()
    assert cancelled["state"] == "cancelled"
    assert {h["state"] for h in hosts(api).values()} == {"active"}
    # Nothing to free: refused with the reasons.
    nothing = error(api.post(RUN, json={"max_fill": 0.05}), 409, "consolidation.nothing_to_free")
    assert nothing["details"]["not_freed"]


def test_undrain_takes_a_host_out_and_a_started_move_is_adopted(api: Api) -> None:
    agents = fleet(api, hosts=4, servers=4)
    started = api.post(RUN, json={"reserve": 0, "max_parallel": 1}, expect=202).json()
    first, *rest = started["plan"]["moves"]
    # A move started outside the loop (another replica, or just before a crash) is
    # adopted by its step rather than started twice or skipped.
    api.post(
        f"/v1/instances/{first['instance_id']}/migrate",
        json={"target": first["target"]},
        expect=202,
    )
    status = tick(api, agents)
    assert status["steps"][0]["state"] in ("in-flight", "done")
    assert status["steps"][0]["migration_id"]
    # The operator takes the last source back into service: its steps are skipped and
    # the host is left alone.
    last = rest[-1]["source"]
    api.post(f"/v1/hosts/{last}/undrain", expect=200)
    final = run_to_end(api, agents)
    assert final["state"] == "done"
    skipped = [s for s in final["steps"] if s["state"] == "skipped"]
    assert [s["source"] for s in skipped] == [last]
    assert "no longer emptied by this consolidation (active)" in skipped[0]["message"]
    outcome = {h["name"]: h for h in final["hosts"]}
    assert outcome[last]["outcome"] == "kept-on"
    assert hosts(api)[last]["state"] == "active"
    assert final["powered_down"] == len(started["plan"]["freed"]) - 1
