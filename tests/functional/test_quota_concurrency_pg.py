"""Quota enforcement under concurrency on PostgreSQL, with two control-plane replicas.

1,000 concurrent creates from 10 projects in 3 agencies under one ministry (plus 200
deletions racing them, half confirmed by the agent through the other replica) go through
two in-process replicas (each its own app, store and connection pool) on one database.
Host capacity is plentiful, so quota is the binding constraint. Limits are set at every
level, with the agencies' limits adding up to more than the ministry's.

Afterwards every level's usage is within its limit and equals the sum of its live
instances, and verify finds no drift. While the burst runs, a watcher thread keeps
reading the quota rows and the live instances in one REPEATABLE READ snapshot: it records
the highest usage it ever saw at each level (stored and counted from instances) and
whether the two ever disagreed. Nova's counting quotas can overshoot briefly under such a
burst; the assertion here is that ours never did, in any sample.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from controlplane.store.tables import InstanceRow, OrganisationRow, QuotaNodeRow
from tests.api_helper import ADMIN_TOKEN, Agent, Api, FakeClock

pytestmark = pytest.mark.postgres

CREATES = 1000
DELETES = 200
WORKERS = 16
SEED = 20261126

MINISTRY = "motc"
AGENCIES: dict[str, list[str]] = {
    "thb": ["p0", "p1", "p2", "p3"],
    "rail": ["p4", "p5", "p6"],
    "air": ["p7", "p8", "p9"],
}
PROJECTS = [p for projects in AGENCIES.values() for p in projects]
#: vCPU is the binding dimension; agencies add up to 600 vCPU > the ministry's 400.
LIMITS: dict[str, dict[str, int]] = {
    MINISTRY: {"vcpus": 400, "instances": 320, "ram_mib": 400 * 1024},
    "thb": {"vcpus": 200},
    "rail": {"vcpus": 200, "instances": 90},
    "air": {"vcpus": 200},
    "p0": {"vcpus": 40},
    "p4": {"instances": 25},
    "p7": {"vcpus": 30, "disk_gib": 50},
}
FLAVORS = {"c1": (1, 512, 1), "c2": (2, 1024, 2)}
DIMS = ("instances", "vcpus", "ram_mib", "disk_gib")


@dataclass
class Watch:
    """What the watcher saw: the highest usage per (node, dimension), stored and counted."""

    samples: int = 0
    max_stored: Counter[tuple[str, str]] = field(default_factory=Counter)
    max_counted: Counter[tuple[str, str]] = field(default_factory=Counter)
    disagreements: list[str] = field(default_factory=list)
    overshoots: list[str] = field(default_factory=list)


def sample(engine: Engine, paths: dict[str, str], watch: Watch) -> None:
    """One consistent snapshot of the quota rows and the live instances."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            nodes = conn.execute(
                select(QuotaNodeRow.org, QuotaNodeRow.usage, QuotaNodeRow.limits)
            ).all()
            live = conn.execute(
                select(
                    InstanceRow.org_path,
                    func.count(),
                    func.sum(InstanceRow.vcpus),
                    func.sum(InstanceRow.ram_mib),
                    func.sum(InstanceRow.disk_gib),
                )
                .where(InstanceRow.state != "DELETED")
                .group_by(InstanceRow.org_path)
            ).all()
    counted: dict[str, Counter[str]] = {code: Counter() for code in paths}
    for path, count, vcpus, ram, disk in live:
        for code in path.split("/"):
            counted[code].update(instances=count, vcpus=vcpus, ram_mib=ram, disk_gib=disk)
    watch.samples += 1
    for org, usage, limits in nodes:
        for dim in DIMS:
            stored, actual = usage.get(dim, 0), counted[org][dim]
            key = (org, dim)
            watch.max_stored[key] = max(watch.max_stored[key], stored)
            watch.max_counted[key] = max(watch.max_counted[key], actual)
            if stored != actual:
                watch.disagreements.append(f"{org} {dim}: stored {stored}, instances {actual}")
            cap = limits.get(dim)
            if cap is not None and max(stored, actual) > cap:
                watch.overshoots.append(f"{org} {dim}: {max(stored, actual)} > limit {cap}")


def watcher(engine: Engine, paths: dict[str, str], stop: threading.Event, watch: Watch) -> None:
    while not stop.is_set():
        sample(engine, paths, watch)
        time.sleep(0.01)


def seed(api: Api) -> Agent:
    api.create_dc()
    for name, (vcpus, ram, disk) in FLAVORS.items():
        api.create_flavor(name, vcpus, ram, disk)
    api.create_image("cirros")
    api.create_org(MINISTRY, "gov")
    for agency, projects in AGENCIES.items():
        api.create_org(agency, MINISTRY)
        for project in projects:
            api.create_org(project, agency)
    for org, limits in LIMITS.items():
        api.patch(f"/v1/quotas/{org}", json={"limits": limits}, expect=200)
    api.get("/v1/quotas/gov", expect=200)  # every node on the paths has its row now
    # plentiful hosts: quota, not capacity, is what runs out
    agent = api.register_host("tpe-h01", vcpus=4096, ram_mib=4 * 1024 * 1024, disk_gib=100_000)
    api.register_host("tpe-h02", vcpus=4096, ram_mib=4 * 1024 * 1024, disk_gib=100_000)
    return agent


def test_1000_concurrent_creates_never_exceed_any_level(
    pg_url: str, api_factory: Callable[..., Api], record_property: Callable[[str, Any], None]
) -> None:
    clock = FakeClock()
    replicas = [api_factory(pg_url, clock=clock), api_factory(pg_url, clock=clock)]
    assert replicas[0].store.db.engine is not replicas[1].store.db.engine
    agent = seed(replicas[0])
    agents = [agent, replace(agent, api=replicas[1])]  # the same agent, through either
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with replicas[0].store.db.engine.connect() as conn:
        paths = dict(conn.execute(select(OrganisationRow.code, OrganisationRow.path)).all())

    rng = random.Random(SEED)
    tasks = [("create", i) for i in range(CREATES)] + [("delete", i) for i in range(DELETES)]
    rng.shuffle(tasks)
    flavors = [rng.choice(sorted(FLAVORS)) for _ in range(CREATES)]
    accepted: list[str] = []
    accepted_lock = threading.Lock()
    creates: dict[int, httpx.Response] = {}
    deleted: list[str] = []

    def create(i: int) -> None:
        project = PROJECTS[i % len(PROJECTS)]
        response = replicas[i % 2].client.post(
            "/v1/instances",
            headers=headers,
            json={
                "name": f"vm-{i:04d}",
                "project": project,
                "flavor": flavors[i],
                "image": "cirros",
            },
        )
        creates[i] = response
        if response.status_code == 202:
            with accepted_lock:
                accepted.append(response.json()["id"])

    def delete(i: int) -> None:
        with accepted_lock:
            if not accepted:
                return
            victim = accepted.pop(random.Random(SEED + i).randrange(len(accepted)))
        replica = replicas[(i + 1) % 2]
        response = replica.client.delete(f"/v1/instances/{victim}", headers=headers)
        assert response.status_code == 202, response.text
        if response.json()["state"] == "DELETING" and i % 3:
            agents[i % 2].status(victim, "absent")  # confirmed through the other replica
        deleted.append(victim)

    def run(task: tuple[str, int]) -> None:
        kind, i = task
        (create if kind == "create" else delete)(i)

    watch = Watch()
    stop = threading.Event()
    engine = replicas[1].store.db.engine
    observer = threading.Thread(target=watcher, args=(engine, paths, stop, watch), daemon=True)
    began = time.monotonic()
    observer.start()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(run, tasks))
    finally:
        stop.set()
        observer.join(timeout=30)
    elapsed = time.monotonic() - began
    sample(engine, paths, watch)  # and once more at rest

    # What the watcher saw while the burst ran (reported before anything is asserted).
    statuses = Counter(r.status_code for r in creates.values())
    overshoot = max(
        [0]
        + [
            max(watch.max_stored[(org, dim)], watch.max_counted[(org, dim)]) - cap
            for org, limits in LIMITS.items()
            for dim, cap in limits.items()
        ]
    )
    figures = {
        "creates": CREATES,
        "deletes": len(deleted),
        "accepted": statuses[202],
        "refused": statuses[403],
        "seconds": round(elapsed, 1),
        "samples": watch.samples,
        "max_ministry_vcpus": watch.max_stored[(MINISTRY, "vcpus")],
        "max_overshoot": overshoot,
        "disagreeing_samples": len(watch.disagreements),
    }
    print(f"quota burst: {figures}")  # the figures the issue asks to report
    for key, value in figures.items():
        record_property(key, value)
    assert watch.samples >= 10, watch.samples  # it really looked during the burst
    assert watch.overshoots == [], watch.overshoots[:20]
    assert overshoot == 0
    assert watch.disagreements == [], watch.disagreements[:20]

    # at rest: usage <= limit at every level, and equal to the sum of live instances
    assert len(creates) == CREATES
    assert set(statuses) <= {202, 403}, {
        r.status_code: r.text for r in creates.values() if r.status_code not in (202, 403)
    }
    admin = replicas[0]
    live = admin.instances()
    assert len(live) == statuses[202] - len(admin.instances(state="DELETED"))
    for code, path in paths.items():
        counted = Counter[str]()
        for inst in live:
            if inst["org_path"] == path or inst["org_path"].startswith(path + "/"):
                counted.update(instances=1, **inst["resources"])
        usage = admin.get(f"/v1/quotas/{code}", expect=200).json()["node"]["usage"]
        assert usage == {d: n for d, n in counted.items() if n}, code
        for dim, cap in LIMITS.get(code, {}).items():
            assert usage.get(dim, 0) <= cap, (code, dim, usage)
    assert replicas[1].post("/v1/quotas/verify", json={}, expect=200).json() == []

    # every refusal names the exhausted levels of the request's path, with the numbers
    refused_at: Counter[str] = Counter()
    for i, response in creates.items():
        if response.status_code != 403:
            continue
        body = response.json()
        assert body["code"] == "quota.exceeded", body
        violations = body["details"]["violations"]
        assert violations, body
        levels = paths[PROJECTS[i % len(PROJECTS)]].split("/")
        for v in violations:
            assert v["node"] in levels, (v, levels)
            assert v["used"] + v["requested"] > v["limit"], v
            assert v["limit"] == LIMITS[v["node"]][v["dimension"]], v
            refused_at[v["node"]] += 1
    # the ministry's vCPU cap was reached (used + requested > 400 with at most 2 asked),
    # though its agencies' limits add up to 600
    assert refused_at[MINISTRY] > 0, refused_at
