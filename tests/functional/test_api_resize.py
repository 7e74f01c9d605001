"""Resizing a STOPPED instance in place, on SQLite and PostgreSQL (the ``api`` fixture).

A resize moves the instance's host usage and its quota usage at every level of its path by
exactly the difference between the flavors, or changes nothing at all: refused while the
instance runs (409), when some level's quota would be exceeded (403) or when the host has no
room for the larger size (409: a resize never moves an instance). Metering splits the claim
where the resize took effect. The standard seed has gov -> moi -> nfa -> disaster and the
flavors m1.tiny (1/512/1), m1.small (1/1024/10), m1.medium (2/4096/40), m1.large
(4/8192/80).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api_helper import Agent, Api, FakeClock, error

PATH = ("gov", "moi", "nfa", "disaster")
SIZES = {
    "m1.tiny": {"vcpus": 1, "ram_mib": 512, "disk_gib": 1},
    "m1.small": {"vcpus": 1, "ram_mib": 1024, "disk_gib": 10},
    "m1.medium": {"vcpus": 2, "ram_mib": 4096, "disk_gib": 40},
    "m1.large": {"vcpus": 4, "ram_mib": 8192, "disk_gib": 80},
}


def quota_usage(api: Api) -> dict[str, dict[str, int]]:
    """Stored usage of every level of the instance's path."""
    return {org: api.get(f"/v1/quotas/{org}", expect=200).json()["node"]["usage"] for org in PATH}


def host_used(api: Api, agent: Agent) -> dict[str, int]:
    used: dict[str, int] = api.get(f"/v1/hosts/{agent.host_id}", expect=200).json()["used"]
    return used


def resize(api: Api, instance_id: str, flavor: str, *, expect: int = 202) -> Any:
    return api.post(
        f"/v1/instances/{instance_id}/resize", json={"flavor": flavor}, expect=expect
    ).json()


def actions(api: Api, instance_id: str) -> list[tuple[str, str, str]]:
    found = api.get(f"/v1/instances/{instance_id}/actions", expect=200).json()
    return [(a["action"], a["result"], a["message"]) for a in found]


def stopped(api: Api, agent: Agent, flavor: str = "m1.small", name: str = "web") -> str:
    """A STOPPED instance of ``flavor`` in project disaster on ``agent``'s host."""
    instance_id: str = api.create_instance(name, "disaster", flavor)["id"]
    agent.converge()
    api.act(instance_id, "stop")
    agent.converge()
    assert api.instance(instance_id)["state"] == "STOPPED"
    return instance_id


def minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {d: a.get(d, 0) - b.get(d, 0) for d in ("vcpus", "ram_mib", "disk_gib")}


def snapshot(api: Api, agent: Agent, instance_id: str) -> dict[str, Any]:
    """Everything a refused resize must leave as it was."""
    return {
        "instance": api.instance(instance_id),
        "host": host_used(api, agent),
        "quota": quota_usage(api),
        "actions": actions(api, instance_id),
        "generation": agent.assignments()["generation"],
    }


def test_resize_up_and_down_moves_host_and_quota_usage_exactly(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    other = stopped(api, agent, "m1.medium", name="bystander")  # shares host and path
    web = stopped(api, agent)
    host_before, quota_before = host_used(api, agent), quota_usage(api)
    generation = agent.assignments()["generation"]

    body = resize(api, web, "m1.large")
    assert (body["flavor"], body["state"], body["resources"]) == (
        "m1.large",
        "STOPPED",
        SIZES["m1.large"],
    )
    grown = minus(SIZES["m1.large"], SIZES["m1.small"])  # +3 vCPU, +7168 MiB, +70 GiB
    assert minus(host_used(api, agent), host_before) == grown
    for org, used in quota_usage(api).items():
        assert minus(used, quota_before[org]) == grown, org
        assert used["instances"] == quota_before[org]["instances"], org
    assert actions(api, web)[-1] == ("resize", "pending", "m1.small -> m1.large")

    # The agent is woken and told the new size; it redefines the domain and says so.
    listing = agent.assignments(generation)
    assert listing["generation"] > generation
    [assigned] = [a for a in listing["assignments"] if a["instance_id"] == web]
    assert (assigned["flavor"], assigned["vcpus"], assigned["ram_mib"]) == ("m1.large", 4, 8192)
    assert assigned["desired"] == "stopped"
    agent.status(web, "stopped")  # an agent that did not report sizes: not done yet
    assert actions(api, web)[-1][1] == "pending"
    agent.converge()
    assert actions(api, web)[-1] == ("resize", "success", "m1.small -> m1.large")
    assert api.instance(web)["state"] == "STOPPED"

    resize(api, web, "m1.tiny")  # down, below where it started
    assert minus(host_used(api, agent), host_before) == minus(SIZES["m1.tiny"], SIZES["m1.small"])
    for org, used in quota_usage(api).items():
        assert minus(used, quota_before[org]) == minus(SIZES["m1.tiny"], SIZES["m1.small"]), org
    agent.converge()

    assert [(a, r) for a, r, _ in actions(api, web)] == [
        ("create", "success"),
        ("stop", "success"),
        ("resize", "success"),
        ("resize", "success"),
    ]
    assert api.instance(other)["resources"] == SIZES["m1.medium"]
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []

    # Back to the start: the host and every level hold exactly what they held before.
    resize(api, web, "m1.small")
    agent.converge()
    assert host_used(api, agent) == host_before
    assert quota_usage(api) == quota_before
    api.act(web, "start")
    agent.converge()
    assert api.instance(web)["state"] == "RUNNING"


def test_a_newer_resize_supersedes_one_not_yet_applied(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent)
    resize(api, web, "m1.large")
    resize(api, web, "m1.medium")
    agent.converge()
    history = actions(api, web)[-2:]
    assert history[0][:2] == ("resize", "cancelled")
    assert "superseded by a resize to m1.medium" in history[0][2]
    assert history[1] == ("resize", "success", "m1.large -> m1.medium")
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []


def test_resize_is_refused_unless_stopped_and_changes_nothing(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = api.create_instance("web", "disaster", "m1.small")["id"]
    agent.converge()
    assert api.instance(web)["state"] == "RUNNING"
    before = snapshot(api, agent, web)

    body = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}),
        409,
        "instance.invalid_state",
    )
    assert "cannot resize instance" in body["message"]
    assert "resize is accepted in: STOPPED" in body["message"]
    assert body["details"]["allowed"] == ["STOPPED"]
    assert body["details"]["state"] == "RUNNING"
    assert snapshot(api, agent, web) == before

    deleting = api.act(web, "delete")
    assert deleting["state"] == "DELETING"
    body = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}),
        409,
        "instance.invalid_state",
    )
    assert body["details"]["state"] == "DELETING"


def test_resize_requests_are_validated(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent)
    before = snapshot(api, agent, web)

    same = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.small"}), 400, "request.invalid"
    )
    assert "already has flavor m1.small" in same["message"]
    error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m9.none"}), 404, "flavor.not_found"
    )
    error(api.post(f"/v1/instances/{web}/resize", json={}), 422, "request.invalid")
    error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large", "host": "x"}),
        422,
        "request.invalid",
    )
    error(
        api.post(
            "/v1/instances/00000000-0000-4000-8000-000000000000/resize", json={"flavor": "m1.large"}
        ),
        404,
        "instance.not_found",
    )
    assert snapshot(api, agent, web) == before

    api.create_image("big-image", min_ram_mib=2048)
    fat = api.create_instance("fat", "disaster", "m1.medium", "big-image")["id"]
    agent.converge()
    api.act(fat, "stop")
    agent.converge()
    small = error(
        api.post(f"/v1/instances/{fat}/resize", json={"flavor": "m1.small"}),
        400,
        "request.invalid",
    )
    assert "image big-image needs at least 2048 MiB" in small["message"]
    assert api.instance(fat)["flavor"] == "m1.medium"


def test_an_auditor_or_another_ministry_cannot_resize(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent)
    outsider = api.create_user("tom", "ministry-admin", "motc")
    auditor = api.create_user("vic", "auditor", "disaster")
    before = snapshot(api, agent, web)
    error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}, token=outsider),
        404,
        "instance.not_found",
    )
    error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}, token=auditor),
        403,
        "auth.forbidden",
    )
    assert snapshot(api, agent, web) == before


def test_resize_over_quota_is_refused_and_changes_nothing(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent)
    api.patch("/v1/quotas/nfa", json={"limits": {"vcpus": 3}}, expect=200)
    before = snapshot(api, agent, web)

    body = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}),
        403,
        "quota.exceeded",
    )
    [violation] = body["details"]["violations"]
    assert (violation["node"], violation["dimension"]) == ("nfa", "vcpus")
    assert (violation["used"], violation["requested"], violation["limit"]) == (1, 3, 3)
    assert "nfa: vcpus 1 used + 3 requested > limit 3" in body["message"]
    assert snapshot(api, agent, web) == before

    # Only growth is checked: a level already over a lowered limit does not block a
    # resize that does not grow that dimension.
    api.patch("/v1/quotas/disaster", json={"limits": {"vcpus": 0}}, expect=200)
    assert resize(api, web, "m1.tiny")["flavor"] == "m1.tiny"
    agent.converge()
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []


def test_resize_beyond_the_host_is_refused_with_the_numbers_and_changes_nothing(
    api: Api,
) -> None:
    # 4 GiB of RAM usable (512 MiB reserved): m1.small fits, m1.large does not.
    agent = api.register_host("tpe-1-small", vcpus=2, ram_mib=4096 + 512, disk_gib=500)
    web = stopped(api, agent)
    before = snapshot(api, agent, web)

    body = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}),
        409,
        "host.insufficient_capacity",
    )
    assert body["message"].startswith("host tpe-1-small cannot hold the new size: ")
    assert "ram_mib: 1024 used, 1024 -> 8192 needs 8192 > 4096 usable" in body["message"]
    assert "vcpus" not in body["message"]  # 4 vCPU fit (2 cores x 4.0)
    assert body["details"]["dimensions"] == [
        {"dimension": "ram_mib", "used": 1024, "current": 1024, "requested": 8192, "usable": 4096}
    ]
    assert snapshot(api, agent, web) == before  # the quota charge was rolled back too

    assert resize(api, web, "m1.medium")["resources"] == SIZES["m1.medium"]  # 4096 fits exactly
    assert host_used(api, agent) == SIZES["m1.medium"]


def test_a_host_out_of_service_takes_no_larger_size_but_can_shrink(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent, "m1.medium")
    api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "maintenance"}, expect=200)
    before = snapshot(api, agent, web)
    body = error(
        api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}),
        409,
        "host.insufficient_capacity",
    )
    assert "the host is maintenance and takes no larger claims" in body["message"]
    assert snapshot(api, agent, web) == before
    resize(api, web, "m1.small")
    assert host_used(api, agent) == SIZES["m1.small"]


def test_resize_is_audited(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    web = stopped(api, agent)
    response = api.post(
        f"/v1/instances/{web}/resize",
        json={"flavor": "m1.large"},
        headers={"X-Request-Id": "req-resize-1"},
        expect=202,
    )
    assert response.headers["x-request-id"] == "req-resize-1"
    api.post(f"/v1/instances/{web}/resize", json={"flavor": "m1.large"}, expect=400)
    events = [e for e in api.audit() if e["action"] == "instance.resize"]
    assert [(e["outcome"], e["status_code"], e["target_id"]) for e in events] == [
        ("failure", 400, web),
        ("success", 202, web),
    ]
    assert events[1]["request_id"] == "req-resize-1"
    assert events[1]["organisation"] == "gov/moi/nfa/disaster"
    history = api.get(f"/v1/instances/{web}/actions", expect=200).json()
    assert history[-1]["request_id"] == "req-resize-1"
    assert history[-1]["actor"] == "admin"


# -- concurrency (PostgreSQL, two replicas) ----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("binding", ["host", "quota"])
def test_concurrent_resizes_never_overcommit_the_host_or_the_quota(
    pg_seeded_url: str, api_factory: Callable[..., Api], binding: str
) -> None:
    """8 stopped m1.small servers race to become m1.medium (+1 vCPU, +3072 MiB, +30 GiB
    each) through two replicas; there is room for exactly 3 on the host (``host``) or in
    the agency's vCPU quota (``quota``)."""
    replicas = [api_factory(pg_seeded_url, migrate=False) for _ in range(2)]
    api = replicas[0]
    ram = 8 * 1024 + (3 if binding == "host" else 8) * 3072
    agent = api.register_host("tpe-1-h01", vcpus=16, ram_mib=ram + 512, disk_gib=1000)
    servers = [stopped(api, agent, name=f"web-{i}") for i in range(8)]
    if binding == "quota":
        api.patch("/v1/quotas/nfa", json={"limits": {"vcpus": 8 + 3}}, expect=200)

    def attempt(i: int) -> int:
        replica = replicas[i % 2]
        response = replica.post(f"/v1/instances/{servers[i]}/resize", json={"flavor": "m1.medium"})
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = Counter(pool.map(attempt, range(8)))
    refused = 409 if binding == "host" else 403
    assert outcomes == Counter({202: 3, refused: 5})

    flavors = Counter(api.instance(s)["flavor"] for s in servers)
    assert flavors == Counter({"m1.medium": 3, "m1.small": 5})
    held = {
        d: sum(SIZES[f][d] * n for f, n in flavors.items())
        for d in ("vcpus", "ram_mib", "disk_gib")
    }
    assert host_used(api, agent) == held
    assert held["ram_mib"] <= ram
    assert quota_usage(api)["nfa"] == {"instances": 8, **held}
    assert api.post("/v1/quotas/verify", json={}, expect=200).json() == []


# -- metering ---------------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def metered(seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    """The standard seed, with a clock that stands still at T0 until advanced."""
    return api_factory(seeded_url, migrate=False, clock=FakeClock(T0, tick=timedelta(0)))


def test_usage_is_metered_at_each_size_the_instance_had(metered: Api) -> None:
    api = metered
    agent = api.register_host("tpe-1-h01")
    web = api.create_instance("web", "disaster", "m1.small")["id"]
    agent.converge()
    api.clock.advance(10 * HOUR)
    api.act(web, "stop")
    agent.converge()
    resize(api, web, "m1.large")
    agent.converge()
    api.clock.advance(20 * HOUR)

    report = api.get("/v1/usage", params={"month": "2026-11"}, expect=200).json()
    [line] = report["lines"]
    assert line["project"] == "disaster"
    assert line["instances"] == 1  # one instance, metered in two parts
    assert line["instance_hours"] == 30.0
    assert line["vcpu_hours"] == 10 * 1 + 20 * 4
    assert line["ram_gib_hours"] == 10 * 1 + 20 * 8
    assert line["disk_gib_months"] == round((10 * 10 + 20 * 80) / 720, 6)
    assert report["totals"][0]["instances"] == 1
