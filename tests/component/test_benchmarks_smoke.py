"""Smoke test of the benchmarks: the smallest configuration of each measurement runs and
produces well-formed figures. Nothing here looks at a time beyond "it is a number"
(machines are noisy; benchmarks report, tests assert behaviour)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    ROOMY_HOST,
    TIGHT_HOST,
    Databases,
    Result,
    latency_ms,
    percentile,
    prepare_fleet,
    write_report,
)
from benchmarks.agent import measure_agent
from benchmarks.api import measure_api
from benchmarks.placement import measure_placement
from benchmarks.provisioning import measure_provisioning

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
