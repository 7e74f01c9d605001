"""Concurrent placement on PostgreSQL with two control-plane replicas sharing one database.

200 create requests race for hosts with room for exactly 150 instances: exactly 150 are
placed, 50 stay PENDING with a reason, and no host is claimed beyond its usable capacity
(``used`` equals the sum of the instances it holds). Then capacity for 30 more appears and
both replicas' pending loops run at once: exactly 30 more are placed, none twice.

Two variants: two in-process replicas (separate app + store + connection pool each), and
two ``govcloud-api`` OS processes served by uvicorn.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_helper import ADMIN_TOKEN, Api, FakeClock

pytestmark = pytest.mark.postgres

CLAIMING = {"SCHEDULED", "BUILDING", "RUNNING", "STOPPED", "ERROR", "DELETING"}
#: Instances per host; RAM is the binding dimension (flavor c1: 1 vCPU, 512 MiB, 1 GiB).
HOSTS = {"tpe-h01": 60, "tpe-h02": 50, "tpe-h03": 40}
REQUESTS = 200
EXTRA = 30
FLAVOR = {"name": "c1", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}


def host_body(name: str, fits: int, token: str) -> dict[str, Any]:
    """A registration for a host with room for exactly ``fits`` c1 instances
    (usable RAM = capacity - 512 MiB reserved; vCPU and disk have plenty)."""
    return {
        "bootstrap_token": token,
        "name": name,
        "capacity": {"vcpus": 64, "ram_mib": 512 + 512 * fits, "disk_gib": 1000},
        "libvirt_uri": "test:///default",
    }


class Http:
    """Minimal admin client over any httpx-compatible client (TestClient or real)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = self.client.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        return response.json() if response.content else None

    def seed(self) -> None:
        self.call("POST", "/v1/datacentres", 201, json={"code": "tpe-1", "name": "Taipei 1"})
        self.call("POST", "/v1/flavors", 201, json=FLAVOR)
        self.call("POST", "/v1/images", 201, json={"name": "cirros", "path": "/img/c.qcow2"})
        for code, parent in (("moi", "gov"), ("nfa", "moi"), ("disaster", "nfa")):
            self.call("POST", "/v1/orgs", 201, json={"code": code, "name": code, "parent": parent})

    def register(self, name: str, fits: int) -> str:
        token = self.call("POST", "/v1/hosts/bootstrap-tokens", 201, json={"datacentre": "tpe-1"})[
            "token"
        ]
        response = self.client.post("/v1/agent/register", json=host_body(name, fits, token))
        assert response.status_code == 201, response.text
        host_id: str = response.json()["host_id"]
        return host_id

    def create(self, i: int) -> httpx.Response:
        return self.client.post(
            "/v1/instances",
            headers=self.headers,
            json={"name": f"vm-{i:03d}", "project": "disaster", "flavor": "c1", "image": "cirros"},
        )

    def instances(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker = None
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"marker": marker} if marker else {})
            page = self.call("GET", "/v1/instances", 200, params=params)
            items += page["items"]
            marker = page["next_marker"]
            if marker is None:
                return items

    def hosts(self) -> list[dict[str, Any]]:
        hosts: list[dict[str, Any]] = self.call("GET", "/v1/hosts", 200)
        return hosts


def burst(clients: list[Http], count: int, workers: int = 32) -> list[httpx.Response]:
    """``count`` creates at once, round-robin over the replicas, all released together."""
    gate = threading.Barrier(min(workers, count))

    def one(i: int) -> httpx.Response:
        if i < workers:
            gate.wait()
        return clients[i % len(clients)].create(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(count)))


def check_claims(http: Http) -> dict[str, int]:
    """No host over capacity, ``used`` == the sum of its instances; returns per-host counts."""
    instances = http.instances()
    per_host: Counter[str] = Counter()
    sums: dict[str, dict[str, int]] = {}
    for inst in instances:
        if inst["state"] in CLAIMING:
            assert inst["host"] is not None, inst
            per_host[inst["host_name"]] += 1
            total = sums.setdefault(inst["host"], {"vcpus": 0, "ram_mib": 0, "disk_gib": 0})
            for dim, amount in inst["resources"].items():
                total[dim] += amount
        else:
            assert inst["state"] == "PENDING", inst
            assert inst["host"] is None, inst
            assert inst["pending_reason"], inst
    for host in http.hosts():
        usable = {
            "vcpus": int(
                (host["capacity"]["vcpus"] - host["reserved"]["vcpus"]) * host["ratios"]["cpu"]
            ),
            "ram_mib": int(
                (host["capacity"]["ram_mib"] - host["reserved"]["ram_mib"]) * host["ratios"]["ram"]
            ),
            "disk_gib": int(
                (host["capacity"]["disk_gib"] - host["reserved"]["disk_gib"])
                * host["ratios"]["disk"]
            ),
        }
        for dim in usable:
            assert host["used"][dim] <= usable[dim], (host["name"], dim, host)
        expected = sums.get(host["id"], {"vcpus": 0, "ram_mib": 0, "disk_gib": 0})
        assert host["used"] == expected, (host["name"], host["used"], expected)
    return dict(per_host)


def states(http: Http) -> Counter[str]:
    return Counter(i["state"] for i in http.instances())


def assert_full_reasons(http: Http, hosts: list[str]) -> None:
    """Every PENDING instance says why, naming each (full) host and the RAM numbers."""
    for inst in http.instances():
        if inst["state"] == "PENDING":
            reason = inst["pending_reason"]
            assert f"no valid host among {len(hosts)} evaluated" in reason, reason
            for name in hosts:
                assert f"{name}: ram_mib: needs 512 MiB RAM, 0 free of" in reason, reason


# -- two in-process replicas ------------------------------------------------------------------


def test_two_replicas_never_overcommit(pg_url: str, api_factory: Callable[..., Api]) -> None:
    clock = FakeClock()
    a = api_factory(pg_url, clock=clock)
    b = api_factory(pg_url, clock=clock)
    assert a.store is not b.store
    assert a.store.db.engine is not b.store.db.engine
    ha, hb = Http(a.client), Http(b.client)
    ha.seed()
    for name, fits in HOSTS.items():
        ha.register(name, fits)

    responses = burst([ha, hb], REQUESTS)
    assert [r.status_code for r in responses] == [202] * REQUESTS, {
        r.status_code: r.text for r in responses if r.status_code != 202
    }
    assert len({r.json()["id"] for r in responses}) == REQUESTS
    placed_now = sum(r.json()["state"] == "SCHEDULED" for r in responses)
    assert placed_now <= sum(HOSTS.values())
    for r in responses:
        if r.json()["state"] == "PENDING":  # full, or out of bounded retries (rare)
            reason = r.json()["pending_reason"]
            assert "no valid host among 3" in reason or "placement races" in reason, reason
    check_claims(ha)

    # A request that lost its bounded placement retries is left PENDING to the loop; one
    # pass (with the capacity unchanged) settles the burst to its only correct outcome.
    a.place_pending()
    assert states(ha) == {"SCHEDULED": 150, "PENDING": 50}
    assert check_claims(hb) == HOSTS  # every host exactly full
    assert_full_reasons(ha, sorted(HOSTS))

    # capacity for exactly 30 more; both replicas' pending loops run at once
    hb.register("tpe-h04", EXTRA)
    gate = threading.Barrier(2)

    def drain(replica: Api) -> int:
        gate.wait()
        return sum(replica.place_pending() for _ in range(3))

    with ThreadPoolExecutor(max_workers=2) as pool:
        placed = list(pool.map(drain, [a, b]))
    assert sum(placed) == EXTRA, placed  # nothing placed twice
    assert states(hb) == {"SCHEDULED": 180, "PENDING": 20}
    assert check_claims(ha) == HOSTS | {"tpe-h04": EXTRA}
    assert_full_reasons(hb, sorted([*HOSTS, "tpe-h04"]))
    assert a.place_pending() + b.place_pending() == 0

    # each placed instance has exactly one create action, each from its own request
    for inst in ha.instances()[:20]:
        history = a.get(f"/v1/instances/{inst['id']}/actions", expect=200).json()
        assert [h["action"] for h in history] == ["create"]


def test_concurrent_deletes_and_creates_keep_claims_exact(
    pg_url: str, api_factory: Callable[..., Api]
) -> None:
    """Creates racing with deletions confirmed by the agent: the books always balance."""
    clock = FakeClock()
    a = api_factory(pg_url, clock=clock)
    b = api_factory(pg_url, clock=clock)
    ha, hb = Http(a.client), Http(b.client)
    ha.seed()
    agent = a.register_host("tpe-h01", vcpus=64, ram_mib=512 + 512 * 40, disk_gib=1000)
    first = [r.json() for r in burst([ha, hb], 40, workers=16)]
    assert all(r["state"] == "SCHEDULED" for r in first)
    victims = [r["id"] for r in first[::2]]  # 20 deletions

    def delete(i: int) -> None:
        replica = [a, b][i % 2]
        replica.act(victims[i], "delete")

    with ThreadPoolExecutor(max_workers=16) as pool:
        deleting = pool.map(delete, range(len(victims)))
        creating = pool.submit(burst, [ha, hb], 30, 8)
        list(deleting)
        agent.converge()  # the agent removes the domains; claims are released
        creating.result()
    a.place_pending()
    b.place_pending()
    counts = states(ha)
    # 40 fit: the 20 survivors and 20 of the 30 new ones; the 20 deleted are gone
    assert sum(n for state, n in counts.items() if state in CLAIMING) == 40, counts
    assert counts["PENDING"] == 10, counts
    assert len(a.instances(state="DELETED")) == 20
    assert check_claims(hb) == {"tpe-h01": 40}


# -- two OS processes -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def replica_process(url: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``govcloud-api`` on ``port`` over ``url``, its output in ``log`` (a pipe could fill
    up and stall the server)."""
    env = os.environ | {
        "GOVCLOUD_DATABASE_URL": url,
        "GOVCLOUD_ADMIN_TOKEN": ADMIN_TOKEN,
        "GOVCLOUD_RUN_LOOPS": "true",
        "GOVCLOUD_PENDING_RETRY_INTERVAL_S": "0.3",
        # The test's hosts are registered but never heartbeat: keep liveness out of it.
        "GOVCLOUD_HOST_SUSPECT_AFTER_S": "3600",
        "GOVCLOUD_HOST_DOWN_AFTER_S": "7200",
        "GOVCLOUD_HOST_FENCE_AFTER_S": "10800",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from controlplane.api.serve import run; run()",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "replica did not start"
        time.sleep(0.1)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_replica_processes_never_overcommit(pg_url: str, tmp_path: Path) -> None:
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / "replica-1.log", tmp_path / "replica-2.log"]
    with (
        replica_process(pg_url, ports[0], logs[0]) as p1,
        replica_process(pg_url, ports[1], logs[1]) as p2,
    ):
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        wait_ready(p1, bases[0], logs[0])
        wait_ready(p2, bases[1], logs[1])
        with (
            httpx.Client(base_url=bases[0], timeout=60) as c1,
            httpx.Client(base_url=bases[1], timeout=60) as c2,
        ):
            h1, h2 = Http(c1), Http(c2)
            h1.seed()
            for name, fits in HOSTS.items():
                h2.register(name, fits)

            responses = burst([h1, h2], REQUESTS)
            assert [r.status_code for r in responses] == [202] * REQUESTS
            check_claims(h1)
            # both processes' pending loops retry race losers; the result settles at 150
            wait_for(lambda: states(h1)["SCHEDULED"] == 150, "150 placed")
            assert states(h2) == {"SCHEDULED": 150, "PENDING": 50}
            assert check_claims(h2) == HOSTS

            h1.register("tpe-h04", EXTRA)  # both loops race for the 30 new slots
            wait_for(lambda: states(h2)["SCHEDULED"] == 180, "180 placed")
            # Once the loops see every host full (the reasons name all four), the count
            # stays at 180 while both keep running.
            wait_for(
                lambda: all(
                    "no valid host among 4 evaluated" in (i["pending_reason"] or "")
                    for i in h1.instances()
                    if i["state"] == "PENDING"
                ),
                "reasons to name all four full hosts",
            )
            assert states(h1) == {"SCHEDULED": 180, "PENDING": 20}
            assert check_claims(h2) == HOSTS | {"tpe-h04": EXTRA}
            assert_full_reasons(h1, sorted([*HOSTS, "tpe-h04"]))
    assert p1.returncode is not None
    assert p2.returncode is not None


# -- server groups under concurrency ---------------------------------------------------------

GROUPS = 5
GROUP_HOSTS = 20


def test_500_concurrent_requests_with_anti_affinity_groups(
    pg_url: str, api_factory: Callable[..., Api]
) -> None:
    """Two replicas, 500 concurrent creates, half of them in five anti-affinity groups (at
    most one member per host, 20 hosts): no host is overcommitted and no group ever has two
    members on one host (the group row is locked in the commit)."""
    clock = FakeClock()
    a = api_factory(pg_url, clock=clock)
    b = api_factory(pg_url, clock=clock)
    ha, hb = Http(a.client), Http(b.client)
    ha.seed()
    for i in range(GROUP_HOSTS):
        (ha if i % 2 else hb).register(f"tpe-g{i:02d}", 20)
    groups = [
        ha.call(
            "POST",
            "/v1/server-groups",
            201,
            json={"name": f"g{n}", "project": "disaster", "policy": "anti-affinity"},
        )["id"]
        for n in range(GROUPS)
    ]
    gate = threading.Barrier(32)

    def one(i: int) -> httpx.Response:
        if i < 32:
            gate.wait()
        body = {"name": f"vm-{i:03d}", "project": "disaster", "flavor": "c1", "image": "cirros"}
        if i % 2:
            body["server_group"] = groups[i % GROUPS]
        client = [ha, hb][i % 2]
        return client.client.post("/v1/instances", headers=client.headers, json=body)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(one, range(500)))
    assert [r.status_code for r in responses] == [202] * 500, {
        r.status_code: r.text[:300] for r in responses if r.status_code != 202
    }
    while a.place_pending() + b.place_pending():  # settle requests that lost races
        pass
    per_host = check_claims(ha)  # zero overcommit, books exact
    # 250 ungrouped all fit (400 slots); each group gets one member per host (5 x 20)
    assert sum(per_host.values()) == 250 + GROUPS * GROUP_HOSTS
    instances = ha.instances()
    for gid in groups:
        hosts = Counter(
            i["host"] for i in instances if i["server_group"] == gid and i["state"] in CLAIMING
        )
        assert hosts, gid
        assert max(hosts.values()) == 1, (gid, hosts)  # zero anti-affinity violations
        assert sum(hosts.values()) == GROUP_HOSTS  # 50 asked, one per host fits
    pending = [i for i in instances if i["state"] == "PENDING"]
    assert len(pending) == 250 - GROUPS * GROUP_HOSTS
    assert all(i["pending_reason"] for i in pending)
