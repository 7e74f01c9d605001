"""Smoke test of the planner benchmark: the smallest configuration runs and produces
well-formed figures (no time is asserted beyond "it is a number")."""

from __future__ import annotations

from benchmarks.__main__ import BENCHMARKS, NO_DATABASE
from benchmarks.planner import COLUMNS, NAME, measure_planner, targets


def test_planner_benchmark_smallest() -> None:
    row = measure_planner(rooms=5, workloads=60, waves=2)
    assert set(row) == set(COLUMNS)
    assert (row["rooms"], row["workloads"], row["datacentres"]) == (5, 60, 15)
    assert isinstance(row["plan_s"], float)
    assert row["plan_s"] >= 0
    hosts, bound, pooled = row["hosts"], row["lower_bound"], row["lower_bound_pooled"]
    assert isinstance(hosts, int)
    assert isinstance(bound, int)
    assert isinstance(pooled, int)
    assert hosts >= bound >= pooled > 0
    assert row["left_out"] == 0
    assert row["waves"] == 2


def test_planner_benchmark_is_registered_and_needs_no_database() -> None:
    assert NAME in BENCHMARKS
    assert NAME in NO_DATABASE
    assert len(targets()) == 15
