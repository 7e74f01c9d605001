"""Scenario-run rules (pure): synthetic load curves, peak/p95/mean, the run's next state,
scenario validation, and measured groups as sizing input (known answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.drivers.behaviour import SyntheticUsage, curve_value
from agents.protocol.v1 import CurveShape, LoadCurve, LoadProfile
from controlplane.lab.measure import (
    Progress,
    Sample,
    Stat,
    group_usage,
    next_state,
    stat,
    to_measurements,
)
from controlplane.lab.scenario import RunState, Scenario
from controlplane.planner.hostmodel import HostModel, HostModelCatalog
from controlplane.planner.sizing import Redundancy, SizingTargets, size

T0 = datetime(2026, 11, 1, tzinfo=UTC)
R = RunState


def test_curves_known_values() -> None:
    ramp = LoadCurve(shape=CurveShape.RAMP, low=0.2, high=0.6, period_s=40)
    assert [curve_value(ramp, t) for t in (0, 10, 40, 400)] == pytest.approx([0.2, 0.3, 0.6, 0.6])
    sine = LoadCurve(shape=CurveShape.SINE, low=0.2, high=0.8, period_s=60)
    assert [curve_value(sine, t) for t in (0, 15, 30, 60)] == pytest.approx([0.2, 0.5, 0.8, 0.2])
    square = LoadCurve(shape=CurveShape.SQUARE, low=0.1, high=0.9, period_s=20, duty=0.25)
    assert [curve_value(square, t) for t in (0, 4, 5, 19, 20)] == [0.9, 0.9, 0.1, 0.1, 0.9]
    assert curve_value(LoadCurve(high=0.7), 1e6) == 0.7


@given(
    shape=st.sampled_from(list(CurveShape)),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
    t=st.floats(-10, 1e7),
)
def test_curves_stay_within_0_and_1(shape: CurveShape, low: float, high: float, t: float) -> None:
    value = curve_value(LoadCurve(shape=shape, low=low, high=high, period_s=30), t)
    assert 0.0 <= value <= 1.0
    assert min(low, high) - 1e-9 <= value <= max(low, high) + 1e-9


def test_synthetic_usage_is_deterministic() -> None:
    profile = LoadProfile(cpu=LoadCurve(shape=CurveShape.RAMP, low=0, high=1, period_s=10))
    iid = "6f1c2a7e-0000-4000-8000-000000000001"
    a = SyntheticUsage().sample(iid, profile, 5.0, 0.0)
    b = SyntheticUsage().sample(iid, profile, 5.0, 99.0)
    assert a == b
    assert a is not None
    assert a.cpu == 0.5
    assert a.source == "synthetic"


def test_stat_known_answers() -> None:
    assert stat([]) == Stat()
    assert stat([0.5]) == Stat(peak=0.5, p95=0.5, mean=0.5, samples=1)
    values = [i / 100 for i in range(1, 101)]  # 0.01 .. 1.00
    s = stat(values)
    assert (s.peak, s.p95, s.mean, s.samples) == (1.0, 0.95, 0.505, 100)
    # a spike on a tiny series: nearest-rank p95 is below the mean; mean is capped to it
    spike = stat([0.0] * 19 + [1.0])
    assert (spike.peak, spike.p95, spike.mean) == (1.0, 0.0, 0.0)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=200))
def test_stat_is_ordered_for_sizing(values: list[float]) -> None:
    s = stat(values)
    assert s.mean <= s.p95 <= s.peak == max(values)


def _next(state: RunState, progress: Progress, after_s: float, **kw: object) -> RunState:
    return next_state(
        state,
        progress,
        T0 + timedelta(seconds=after_s),
        created_at=T0,
        load_started_at=kw.get("load_started_at", T0),  # type: ignore[arg-type]
        duration_s=60,
        provision_timeout_s=300,
    )


def test_run_state_machine() -> None:
    assert _next(R.PROVISIONING, Progress(3, 2, 0), 10) is R.PROVISIONING
    assert _next(R.PROVISIONING, Progress(3, 2, 1), 10) is R.LOADING
    assert _next(R.PROVISIONING, Progress(3, 1, 0), 300) is R.LOADING  # timeout
    assert _next(R.PROVISIONING, Progress(3, 0, 3), 10) is R.CANCELLING  # all failed
    assert _next(R.LOADING, Progress(3, 3, 0), 59) is R.LOADING
    assert _next(R.LOADING, Progress(3, 3, 0), 60) is R.CLEANING
    assert _next(R.CLEANING, Progress(3, 3, 0, gone=2), 90) is R.CLEANING
    assert _next(R.CLEANING, Progress(3, 3, 0, gone=3), 90) is R.COMPLETED
    assert _next(R.CANCELLING, Progress(3, 1, 0, gone=3), 90) is R.CANCELLED
    assert _next(R.COMPLETED, Progress(3, 3, 0, gone=3), 90) is R.COMPLETED


def test_scenario_validation_names_fields() -> None:
    group = {"name": "web", "flavor": "m1.small", "image": "cirros"}
    ok = Scenario.model_validate(
        {"name": "s", "duration_s": 10, "groups": [group, group | {"name": "db", "count": 3}]}
    )
    assert ok.vm_count == 4
    with pytest.raises(ValidationError, match="unique"):
        Scenario.model_validate({"name": "s", "duration_s": 10, "groups": [group, group]})
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Scenario.model_validate({"name": "s", "duration_s": 10, "groups": [group | {"count": 101}]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Scenario.model_validate({"name": "s", "duration_s": 10, "groups": [group], "colour": 1})


def test_measured_groups_size_with_known_answers() -> None:
    samples = [Sample("web", 0.5, 0.5, 0.1)] * 10 + [Sample("db", 0.9, 0.2, 0.3)] * 4
    web = group_usage("web", ("m1.medium", 2, 4096, 40), 2, [3.0, 5.0], 0, samples)
    db = group_usage("db", ("m1.large", 4, 8192, 80), 1, [], 1, samples)
    assert (web.running, web.failed, web.provision_s.peak, web.cpu.samples) == (2, 0, 5.0, 10)
    assert (db.running, db.failed, db.cpu.peak) == (0, 1, 0.9)
    measured = to_measurements("dictionary", [web])
    assert measured.groups[0].cpu.p95 == 0.5
    assert measured.groups[0].count == 2
    # one tiny host holds exactly one m1.medium (4096 of 7680 usable MiB)
    tiny = HostModel(
        name="tiny", cores=2, threads_per_core=1, ram_gib=8, disk_gib=100,
        idle_watts=50, peak_watts=150, price=100000, rack_units=1,
    )  # fmt: skip
    catalog = HostModelCatalog(currency="TWD", models=[tiny])
    for redundancy, hosts in ((Redundancy.NONE, 3), (Redundancy.N_PLUS_1, 4)):
        result = size(measured, catalog, SizingTargets(growth=1.5, redundancy=redundancy), [])
        assert result.demand.vms == 3
        assert [m.hosts for m in result.models] == [hosts]
