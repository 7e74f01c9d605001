"""The scheduler benchmark runs at the smallest size and is registered with the runner
(the figures themselves come from ``python -m benchmarks --only scheduler``)."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import BENCHMARKS, NO_DATABASE
from benchmarks.scheduler import COLUMNS, NAME, measure_fleet_upkeep, measure_scheduler
from controlplane.domain.datacentre import PlacementPolicy


@pytest.mark.parametrize("policy", list(PlacementPolicy))
def test_measure_scheduler_smallest_size(policy: PlacementPolicy) -> None:
    row = measure_scheduler(60, policy, 33, decisions=4, oracle_decisions=4)
    assert list(row) == COLUMNS
    assert row["decisions"] == 4
    assert row["oracle_decisions"] == 4  # and every sampled plan equalled the oracle's
    for key in ("fleet_p50_ms", "tuple_p99_ms", "oracle_p50_ms"):
        assert isinstance(row[key], float)


def test_fleet_upkeep_and_registration() -> None:
    row = measure_fleet_upkeep(100, repeats=5)
    assert row["hosts"] == 100
    assert isinstance(row["replace_1_p50_ms"], float)
    assert NAME in BENCHMARKS
    assert NAME in NO_DATABASE
