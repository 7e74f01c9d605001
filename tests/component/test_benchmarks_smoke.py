"""Smoke test of the benchmarks: the smallest configuration of each measurement runs and
produces well-formed figures. Nothing here looks at a time beyond "it is a number"
(machines are noisy; benchmarks report, tests assert behaviour)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import (
    ROOMY_HOST,
    TIGHT_HOST,
    Databases,
    Result,
    Row,
    latency_ms,
    percentile,
    prepare_fleet,
    write_report,
)
from benchmarks import placement_ref as ref
from benchmarks.agent import measure_agent
from benchmarks.api import measure_api
from benchmarks.httpload import Outcome, closed_loop, drive, summarise
from benchmarks.placement import measure_placement
from benchmarks.provisioning import measure_provisioning
from benchmarks.scale import measure_scale
from benchmarks.versus import measure_govcloud, ratio_rows
from controlplane.domain.host import DEFAULT_RESERVED, AllocationRatios, usable

LATENCY_KEYS = ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def assert_latencies(row: dict[str, Any], prefix: str = "") -> None:
    values = [row[f"{prefix}{key}"] for key in LATENCY_KEYS]
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in values), row
    _mean, p50, p95, p99, top = values
    assert p50 <= p95 <= p99 <= top, row


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([5.0], 99) == 5.0
    assert latency_ms([])["p50_ms"] is None
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize("workers", [1, 2])
def test_placement_smallest(sqlite_url: str, workers: int) -> None:
    prepare_fleet(sqlite_url, 3, ROOMY_HOST)
    row = measure_placement(sqlite_url, requests=4, workers=workers, warmup=1)
    assert row["backend"] == "sqlite"
    assert row["hosts"] == 3
    assert row["workers"] == workers
    assert row["placed"] == 4
    assert row["pending"] == 0
    assert row["errors"] == 0
    assert row["races_lost"] == 0  # SQLite serialises writers
    assert row["hosts_over_capacity"] == 0
    assert isinstance(row["decisions_per_s"], float)
    assert row["decisions_per_s"] > 0
    assert_latencies(row)


def test_placement_reports_a_full_fleet_as_pending(sqlite_url: str) -> None:
    prepare_fleet(sqlite_url, 1, TIGHT_HOST)  # room for two instances
    row = measure_placement(sqlite_url, requests=3, workers=1, warmup=0)
    assert (row["placed"], row["pending"], row["errors"]) == (2, 1, 0)
    assert row["hosts_over_capacity"] == 0


@pytest.mark.postgres
def test_placement_smallest_on_postgres(pg_url: str) -> None:
    prepare_fleet(pg_url, 3, ROOMY_HOST)
    row = measure_placement(pg_url, requests=4, workers=2, warmup=1)
    assert row["backend"] == "postgres"
    assert (row["placed"], row["errors"], row["hosts_over_capacity"]) == (4, 0, 0)
    assert_latencies(row)


def test_api_smallest(sqlite_url: str) -> None:
    prepare_fleet(sqlite_url, 3)
    row = measure_api(sqlite_url, requests=3, warmup=1)
    assert (row["backend"], row["hosts"], row["requests"], row["errors"]) == ("sqlite", 3, 3, 0)
    assert_latencies(row)


def test_agent_smallest(tmp_path: Path) -> None:
    define, idle = measure_agent(tmp_path, assignments=3, repeats=1, idle_repeats=1)
    assert (define["pass"], idle["pass"]) == ("define+start", "idle resync")
    for row in (define, idle):
        assert row["assignments"] == 3
        assert row["not_running"] == 0
        median, low, high = row["median_s"], row["min_s"], row["max_s"]
        assert isinstance(median, float)
        assert isinstance(low, float)
        assert isinstance(high, float)
        assert 0 <= low <= median <= high


def test_provisioning_smallest(sqlite_url: str, tmp_path: Path) -> None:
    row = measure_provisioning(sqlite_url, tmp_path, instances=2, agents=1, poll_wait_s=0.5)
    assert (row["backend"], row["agents"], row["instances"]) == ("sqlite", 1, 2)
    assert (row["running"], row["failed"]) == (2, 0)
    assert_latencies(row)
    assert_latencies(row, prefix="post_")


def test_databases_copy_seeded_templates(tmp_path: Path) -> None:
    built: list[str] = []

    def build(url: str) -> None:
        built.append(url)
        prepare_fleet(url, 2)

    databases = Databases(tmp_path)
    assert databases.backends == ("sqlite",)
    first = databases.seeded("sqlite", "two", build)
    second = databases.seeded("sqlite", "two", build)
    assert len(built) == 1
    assert first != second
    for url in (first, second):
        assert measure_placement(url, requests=1, workers=1, warmup=0)["hosts"] == 2


def test_report_files_are_well_formed(tmp_path: Path) -> None:
    result = Result(
        name="demo",
        title="Demo",
        description="A table.",
        columns=["backend", "p50_ms", "ok"],
        rows=[{"backend": "sqlite", "p50_ms": 1.25, "ok": True}, {"backend": "a|b"}],
        notes=["a note"],
    )
    report = {
        "suite": "demo",
        "date": "2026-01-02",
        "duration_s": 1.0,
        "quick": True,
        "command": "python -m benchmarks --quick",
        "git": {"commit": "abc", "dirty": False},
        "machine": {"nproc": 2},
        "benchmarks": {"demo": result.as_dict()},
    }
    json_path, md_path = write_report(report, tmp_path / "out", "2026-01-02-demo")
    assert json.loads(json_path.read_text()) == report
    markdown = md_path.read_text()
    assert "| backend | p50_ms | ok |" in markdown
    assert "| sqlite | 1.2 | yes |" in markdown  # 1.25 rounds half to even
    assert "| a\\|b | - | - |" in markdown
    assert "- a note" in markdown


# -- (b) side by side with Placement: the govcloud side, and the reference's pure parts ----


def test_versus_govcloud_over_http(sqlite_url: str, tmp_path: Path) -> None:
    prepare_fleet(sqlite_url, 3)
    rows = measure_govcloud(sqlite_url, tmp_path, hosts=3, counts={1: 3, 2: 4})
    assert [(r["system"], r["clients"], r["requests"]) for r in rows] == [
        ("govcloud", 1, 3),
        ("govcloud", 2, 4),
    ]
    for row in rows:
        assert (row["ok"], row["failed"], row["server_errors_5xx"]) == (row["requests"], 0, 0)
        assert_latencies(row)


def test_placement_inventory_offers_what_govcloud_offers() -> None:
    inv = ref.inventories(ROOMY_HOST)
    ratios = AllocationRatios()
    room = usable(ROOMY_HOST, DEFAULT_RESERVED, ratios)
    for rc, govcloud in (
        ("VCPU", room.vcpus),
        ("MEMORY_MB", room.ram_mib),
        ("DISK_GB", room.disk_gib),
    ):
        placement_capacity = (inv[rc]["total"] - inv[rc]["reserved"]) * inv[rc]["allocation_ratio"]
        assert int(placement_capacity) == govcloud, rc
    assert inv["MEMORY_MB"]["reserved"] == DEFAULT_RESERVED.ram_mib
    assert inv["VCPU"]["allocation_ratio"] == ratios.cpu
    assert ref.provider_name(4) == "txg-1-h0004"  # the name seed_hosts gives host 4
    assert ref.provider_uuid(4) == ref.provider_uuid(4) != ref.provider_uuid(5)


def test_placement_requests_are_novas() -> None:
    params = ref.candidate_params(limit=1000)
    assert params["resources"] == "VCPU:1,MEMORY_MB:2048,DISK_GB:20"
    assert params["limit"] == "1000"
    assert params["root_required"] == "!COMPUTE_STATUS_DISABLED"
    body = {
        "allocation_requests": [
            {"allocations": {"rp-a": {"resources": {"VCPU": 1, "MEMORY_MB": 2048}}}},
            {"allocations": {"rp-b": {"resources": {"VCPU": 1}}}},
        ],
        "provider_summaries": {},
    }
    first, second = ref.allocation_requests(body)
    assert list(first) == ["rp-a"]
    assert list(second) == ["rp-b"]
    payload = ref.allocation_payload(first)
    assert payload["allocations"] == {"rp-a": {"resources": {"VCPU": 1, "MEMORY_MB": 2048}}}
    assert payload["consumer_generation"] is None
    assert payload["project_id"]
    assert payload["user_id"]
    with pytest.raises(ValueError, match="allocation_requests"):
        ref.allocation_requests({"errors": []})
    with pytest.raises(ValueError, match="malformed"):
        ref.allocation_requests({"allocation_requests": [{"allocations": {}}]})


def _fake_placement(put_answers: list[tuple[int, str]]) -> httpx.Client:
    """A client whose transport answers like Placement: two candidates, then the PUTs in
    ``put_answers`` (status, error code) in order."""
    answers = list(put_answers)
    puts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.url.path == "/allocation_candidates"
            assert request.url.params["resources"] == ref.resources_query()
            return httpx.Response(
                200,
                json={
                    "allocation_requests": [
                        {"allocations": {rp: {"resources": {"VCPU": 1}}}} for rp in ("a", "b")
                    ]
                },
            )
        puts.append(json.loads(request.content)["allocations"].popitem()[0])
        status, code = answers.pop(0)
        if status == 204:
            return httpx.Response(204)
        return httpx.Response(status, json={"errors": [{"status": status, "code": code}]})

    client = httpx.Client(transport=httpx.MockTransport(handle), base_url="http://placement")
    client.puts = puts  # type: ignore[attr-defined]
    return client


def test_placement_decision_retries_like_nova() -> None:
    # A generation conflict is retried on the same provider...
    client = _fake_placement([(409, ref.CONCURRENT_UPDATE), (204, "")])
    outcome = ref.decide(client, 0)
    assert (outcome.ok, outcome.conflicts, client.puts) == (True, 1, ["a", "a"])  # type: ignore[attr-defined]
    assert {name for name, _ in outcome.parts} == {"get", "put"}
    # ...a full provider (other 409) or a server error moves to the next candidate...
    client = _fake_placement([(409, "placement.undefined_code"), (204, "")])
    outcome = ref.decide(client, 1)
    assert (outcome.ok, outcome.conflicts, client.puts) == (True, 1, ["a", "b"])  # type: ignore[attr-defined]
    client = _fake_placement([(500, ""), (204, "")])
    outcome = ref.decide(client, 2)
    assert (outcome.ok, outcome.server_errors) == (True, 1)
    # ...and when every candidate fails, the decision fails (it never raises).
    client = _fake_placement([(409, "x"), (409, "x")])
    outcome = ref.decide(client, 3)
    assert (outcome.ok, outcome.conflicts) == (False, 2)
    assert outcome.error


def test_placement_reference_missing_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ref.VENV_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ref.ReferenceUnavailable, match=r"scripts/placement-ref\.sh"):
        ref.check_available()
    key = ref.cache_key(1000, "16.0.0")
    assert key != ref.cache_key(10000, "16.0.0")
    assert "16.0.0" in key


def test_closed_loop_keeps_order_and_budget() -> None:
    results, wall = closed_loop(lambda i: i * 10, count=5, workers=3, first_index=2)
    assert results == [20, 30, 40, 50, 60]
    assert wall >= 0
    late, _ = closed_loop(lambda i: i, count=5, workers=2, budget_s=-1.0)
    assert late == []  # the budget was spent before the first call


def test_http_load_summary_and_ratio() -> None:
    def decide(_client: httpx.Client, index: int) -> Outcome:
        if index == 2:
            return Outcome(0.5, False, conflicts=3, error="PUT 409")
        return Outcome(0.01 * (index + 1), True, conflicts=index % 2, parts=(("get", 0.001),))

    outcomes, wall = drive(lambda: httpx.Client(), decide, requests=4, clients=2)
    row = summarise(outcomes, wall)
    assert (row["requests"], row["ok"], row["failed"]) == (4, 3, 1)
    assert (row["conflicts_409"], row["claims_with_409"]) == (5, 3)
    assert row["failures"] == "PUT 409 x1"
    assert row["get_p50_ms"] == 1.0
    assert_latencies(row)
    rows: list[Row] = [
        {
            "system": "govcloud",
            "hosts": 10,
            "clients": 1,
            "decisions_per_s": 300.0,
            "p50_ms": 3.0,
            "p99_ms": 5.0,
        },
        {
            "system": "placement",
            "hosts": 10,
            "clients": 1,
            "decisions_per_s": 3.0,
            "p50_ms": 300.0,
            "p99_ms": 400.0,
        },
    ]
    (ratio,) = ratio_rows(rows)
    assert (ratio["decisions_per_s"], ratio["p50_ms"], ratio["p99_ms"]) == (100.0, 100.0, 80.0)


# -- (c) end to end at scale: the smallest run --------------------------------------------


def test_scale_smallest(sqlite_url: str, tmp_path: Path) -> None:
    row = measure_scale(
        sqlite_url,
        tmp_path,
        hosts=3,
        instances=4,
        agents_per_process=2,
        poll_wait_s=1.0,
        idle_window_s=0.2,
    )
    assert (row["hosts"], row["agent_processes"], row["instances"]) == (3, 2, 4)
    assert (row["running"], row["post_failed"], row["not_running"]) == (4, 0, "")
    assert_latencies(row)
    assert isinstance(row["all_running_s"], float)
    assert isinstance(row["rss_one_agent_process_mib"], float)
    assert row["rss_one_agent_process_mib"] > 0
    assert isinstance(row["api_cpu_idle_fleet"], float)
