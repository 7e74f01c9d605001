"""``/metrics``: quota gauges in the Prometheus text format, parsed with prometheus-client's
own parser. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api_helper import Api


def samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def key(name: str, org: str, kind: str, dimension: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, (("dimension", dimension), ("kind", kind), ("org", org))


def test_quota_gauges_follow_usage_and_the_soft_threshold(api: Api) -> None:
    api.register_host("tpe-h01", vcpus=64, ram_mib=65536, disk_gib=2000)
    api.patch(
        "/v1/quotas/moi", json={"limits": {"instances": 5}, "soft_threshold": 0.6}, expect=200
    )
    for n in range(2):
        api.create_instance(f"web-{n}")
    before = samples(api)
    assert before[key("govcloud_quota_used", "moi", "ministry", "instances")] == 2
    assert before[key("govcloud_quota_limit", "moi", "ministry", "instances")] == 5
    assert before[key("govcloud_quota_soft_threshold_reached", "moi", "ministry", "instances")] == 0
    assert (
        before[("govcloud_quota_soft_threshold_ratio", (("kind", "ministry"), ("org", "moi")))]
        == 0.6
    )

    api.create_instance("web-2")  # 3 of 5 = 60%: the threshold is reached
    after = samples(api)
    assert after[key("govcloud_quota_used", "moi", "ministry", "instances")] == 3
    assert after[key("govcloud_quota_soft_threshold_reached", "moi", "ministry", "instances")] == 1
    # the subtree's usage is counted at every level, the root included
    assert after[key("govcloud_quota_used", "gov", "root", "instances")] == 3
    # an unlimited dimension has usage but no limit series
    assert key("govcloud_quota_limit", "moi", "ministry", "vcpus") not in after
