"""``/metrics`` of the control plane with data, on SQLite and PostgreSQL: instance, host,
capacity, provisioning-latency, quota, API, scheduler and reconcile metrics, parsed with
prometheus-client's own parser; replicas over one database agree on fleet-wide series."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.metrics.provisioning import BUCKETS
from controlplane.scheduler.record import DecisionRecord
from tests.api_helper import Api

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Api) -> Samples:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_instances_hosts_capacity_and_provisioning_latency(api: Api) -> None:
    agent = api.register_host("tpe-1-h01", vcpus=8, ram_mib=16384, disk_gib=200)
    fast = api.create_instance("web-0", project="disaster", flavor="m1.medium")
    api.clock.advance(timedelta(seconds=20))
    agent.converge()  # web-0: accepted -> RUNNING in ~20 s
    slow = api.create_instance("web-1", project="traffic", flavor="m1.small")
    api.clock.advance(timedelta(seconds=400))
    agent.converge()  # web-1: ~400 s
    api.register_host("tpe-1-h02", vcpus=8, ram_mib=16384, disk_gib=200)  # idle
    api.create_instance("huge", project="disaster", flavor="m1.large", datacentre="tpe-1")
    placed = {i["name"]: i for i in api.instances()}
    assert placed["huge"]["state"] == "SCHEDULED"

    s = scrape(api)
    running_moi = value(
        s, "govcloud_fleet_instances", state="RUNNING", ministry="moi", datacentre="tpe-1"
    )
    assert running_moi == 1
    assert (
        value(s, "govcloud_fleet_instances", state="RUNNING", ministry="motc", datacentre="tpe-1")
        == 1
    )
    # no instance id anywhere in the labels
    for (_name, labels), _v in s.items():
        for _k, label_value in labels:
            assert label_value not in (fast["id"], slow["id"])

    # provisioning latency: exact buckets from the fake clock (accept -> first RUNNING)
    moi = {"ministry": "moi", "datacentre": "tpe-1"}
    assert value(s, "govcloud_provisioning_latency_seconds_count", **moi) == 1
    assert 20 <= value(s, "govcloud_provisioning_latency_seconds_sum", **moi) < 21
    assert value(s, "govcloud_provisioning_latency_seconds_bucket", le="15.0", **moi) == 0
    assert value(s, "govcloud_provisioning_latency_seconds_bucket", le="30.0", **moi) == 1
    motc = {"ministry": "motc", "datacentre": "tpe-1"}
    assert value(s, "govcloud_provisioning_latency_seconds_bucket", le="300.0", **motc) == 0
    assert value(s, "govcloud_provisioning_latency_seconds_bucket", le="600.0", **motc) == 1
    assert value(s, "govcloud_provisioning_latency_seconds_bucket", le="+Inf", **motc) == 1
    buckets = series(s, "govcloud_provisioning_latency_seconds_bucket")
    assert len(buckets) == 2 * (len(BUCKETS) + 1)  # two (ministry, dc) pairs, bounded

    # hosts: every state reported per data centre; heartbeat age from registration
    assert value(s, "govcloud_fleet_hosts", datacentre="tpe-1", state="active") == 2
    assert value(s, "govcloud_fleet_hosts", datacentre="tpe-1", state="down") == 0
    ages = series(s, "govcloud_host_heartbeat_age_seconds")
    assert len(ages) == 2
    age = {dict(labels)["host"]: v for labels, v in ages.items()}
    assert age["tpe-1-h01"] >= 420  # never heartbeated: counted from registration
    assert age["tpe-1-h02"] < 1

    # capacity: 2 x 8 vCPUs; allocatable with the default 4x CPU overcommit
    assert value(s, "govcloud_datacentre_capacity_vcpus", datacentre="tpe-1") == 16
    assert value(s, "govcloud_datacentre_allocatable_vcpus", datacentre="tpe-1") == 64
    allocated = value(s, "govcloud_datacentre_allocated_vcpus", datacentre="tpe-1")
    assert allocated == 2 + 1 + 4  # m1.medium + m1.small + m1.large, all placed
    assert value(
        s, "govcloud_datacentre_utilisation_ratio", datacentre="tpe-1", resource="vcpus"
    ) == (allocated / 64)
    assert (
        value(s, "govcloud_datacentre_capacity_ram_bytes", datacentre="tpe-1") == 2 * 16384 * 2**20
    )
    assert value(s, "govcloud_metrics_collector_up", collector="provisioning") == 1


def test_deleted_instances_keep_their_provisioning_observation(api: Api) -> None:
    agent = api.register_host("tpe-1-h01")
    inst = api.create_instance("web-0")
    agent.converge()
    api.act(inst["id"], "delete")
    agent.converge()
    assert api.instance(inst["id"])["state"] == "DELETED"
    s = scrape(api)
    labels = {"ministry": "moi", "datacentre": "tpe-1"}
    assert value(s, "govcloud_provisioning_latency_seconds_count", **labels) == 1  # never shrinks
    assert not series(s, "govcloud_fleet_instances")  # deleted ones are not live


def test_pending_age_and_failed_actions(api: Api) -> None:
    api.create_instance("nowhere")  # no host at all: stays PENDING
    api.clock.advance(timedelta(minutes=20))
    s = scrape(api)
    assert value(s, "govcloud_fleet_instances", state="PENDING", ministry="moi", datacentre="") == 1
    assert value(s, "govcloud_instances_pending_age_seconds", datacentre="") >= 1200

    agent = api.register_host("tpe-1-h01")
    api.place_pending()
    inst = api.instances()[0]
    agent.status(inst["id"], "error", message="qemu: cannot allocate memory")
    s = scrape(api)
    assert value(s, "govcloud_instance_action_failures_total", action="create") == 1
    assert (
        value(s, "govcloud_fleet_instances", state="ERROR", ministry="moi", datacentre="tpe-1") == 1
    )


def test_quota_usage_ratio(api: Api) -> None:
    api.register_host("tpe-1-h01")
    api.patch("/v1/quotas/moi", json={"limits": {"instances": 4}}, expect=200)
    api.create_instance("web-0")
    s = scrape(api)
    ratio = value(
        s, "govcloud_quota_usage_ratio", org="moi", kind="ministry", dimension="instances"
    )
    assert ratio == 0.25


def test_api_requests_by_route_template_and_status(api: Api) -> None:
    api.get("/v1/instances/00000000-0000-0000-0000-000000000001", expect=404)
    api.get("/v1/instances/00000000-0000-0000-0000-000000000002", expect=404)
    api.get("/no/such/path", expect=404)
    api.post("/v1/instances", json={"name": ""}, expect=422)
    s = scrape(api)
    template = "/v1/instances/{instance_id}"
    assert value(s, "govcloud_api_requests_total", method="GET", route=template, status="404") == 2
    assert (
        value(s, "govcloud_api_request_errors_total", method="GET", route=template, status="404")
        == 2
    )
    assert (
        value(s, "govcloud_api_requests_total", method="GET", route="unmatched", status="404") == 1
    )
    assert (
        value(s, "govcloud_api_request_duration_seconds_count", method="GET", route=template) == 2
    )
    assert (
        value(s, "govcloud_api_requests_total", method="POST", route="/v1/instances", status="422")
        == 1
    )
    # raw paths never become label values
    routes = {dict(labels)["route"] for labels in series(s, "govcloud_api_requests_total")}
    assert not any("0000" in route for route in routes)


def test_scheduler_records_and_reconcile_passes(api: Api) -> None:
    telemetry: Any = api.app.state.telemetry
    telemetry.scheduler.observe(
        DecisionRecord(outcome="placed", seconds=0.004, datacentre="tpe-1", rejected_by={})
    )
    telemetry.scheduler.observe(
        DecisionRecord(
            outcome="pending",
            seconds=0.02,
            count=3,
            rejected_by={"capacity": 7, "host_state": 2, "traits": 0},
        )
    )
    api.app.state.pending.run_once()
    s = scrape(api)
    assert value(s, "govcloud_scheduler_decisions_total", outcome="placed", datacentre="tpe-1") >= 1
    assert value(s, "govcloud_scheduler_decisions_total", outcome="pending", datacentre="any") >= 1
    assert value(s, "govcloud_scheduler_instances_total", outcome="pending") >= 3
    assert value(s, "govcloud_scheduler_host_rejections_total", check="capacity") >= 7
    assert ("govcloud_scheduler_host_rejections_total", frozenset({("check", "traits")})) not in s
    assert value(s, "govcloud_scheduler_decision_duration_seconds_count", outcome="pending") >= 1
    assert value(s, "govcloud_reconcile_passes_total", loop="pending") == 1
    assert value(s, "govcloud_reconcile_errors_total", loop="pending") == 0


def test_a_failing_pending_pass_is_counted(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(limit: int = 100) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(api.store.instances, "place_pending", broken)
    with pytest.raises(RuntimeError):
        api.app.state.pending.run_once()
    assert value(scrape(api), "govcloud_reconcile_errors_total", loop="pending") == 1


def test_a_broken_collector_does_not_fail_the_scrape(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.register_host("tpe-1-h01")

    def broken() -> list[Any]:
        raise RuntimeError("relation hosts does not exist")

    for source in api.app.state.metrics._collector_to_names:  # the guarded store collector
        for inner in getattr(source, "sources", []):
            if inner.name == "hosts":
                monkeypatch.setattr(inner, "families", broken)
    s = scrape(api)
    assert value(s, "govcloud_metrics_collector_up", collector="hosts") == 0
    assert value(s, "govcloud_metrics_collector_up", collector="capacity") == 1
    assert not series(s, "govcloud_fleet_hosts")
    assert value(s, "govcloud_datacentre_capacity_vcpus", datacentre="tpe-1") == 16


def test_replicas_agree_on_fleet_wide_series(
    seeded_url: str, api_factory: Callable[..., Api]
) -> None:
    one = api_factory(seeded_url, migrate=False)
    two = api_factory(seeded_url, migrate=False, clock=one.clock)
    agent = one.register_host("tpe-1-h01")
    one.create_instance("web-0")
    two.create_instance("web-1", project="traffic")
    agent.converge()
    fleet = (
        "govcloud_fleet_instances",
        "govcloud_provisioning_latency_seconds_bucket",
        "govcloud_datacentre_allocated_vcpus",
        "govcloud_quota_used",
    )
    a, b = scrape(one), scrape(two)
    for name in fleet:
        assert series(a, name), name
        assert series(a, name) == series(b, name), name
    # per-replica series differ: each replica counts only the requests it answered
    creates = ("govcloud_api_requests_total", "/v1/instances")
    assert value(a, creates[0], method="POST", route=creates[1], status="202") == 1
    assert value(b, creates[0], method="POST", route=creates[1], status="202") == 1


def test_the_store_reports_real_scheduling_decisions(api: Api) -> None:
    api.register_host("tpe-1-h01", vcpus=2, ram_mib=4096)
    api.create_instance("web-0", flavor="m1.small")
    api.create_instance("too-big", flavor="m1.large")  # 8 GiB RAM: no host fits, PENDING
    s = scrape(api)
    placed = series(s, "govcloud_scheduler_decisions_total")
    outcomes = {dict(labels)["outcome"]: n for labels, n in placed.items()}
    assert outcomes["placed"] >= 1
    assert outcomes["pending"] >= 1
    rejections = series(s, "govcloud_scheduler_host_rejections_total")
    assert sum(rejections.values()) >= 1  # the one host, rejected by some check
    assert value(s, "govcloud_scheduler_decision_duration_seconds_count", outcome="placed") >= 1
