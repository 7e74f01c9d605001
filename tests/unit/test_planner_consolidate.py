"""Consolidation planner: inventory CSV, the seeded generator, room assignment (affinity,
space, power), packing per data centre against its lower bound, power and waves; with
Hypothesis properties over generated inventories."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.errors import InvalidRequest
from controlplane.planner.consolidate import (
    ConsolidationOptions,
    consolidate,
    demand,
    estimated_watts,
)
from controlplane.planner.generator import MINISTRIES, generate_inventory
from controlplane.planner.hostmodel import BUILTIN, HostModel
from controlplane.planner.inventory import Workload, WorkloadKind, parse_inventory, to_csv
from controlplane.planner.packing import lower_bound, pack
from controlplane.planner.problems import PlanInputError
from controlplane.planner.target import TargetDataCentre, load_targets

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
#: 32 threads x 4 = 128 vCPU, 128 GiB (130560 MiB usable), 2 U.
HOST = HostModel(
    name="h", cores=16, ram_gib=128, disk_gib=4000, idle_watts=100, peak_watts=400, price=1,
    rack_units=2,
)  # fmt: skip


def vm(
    room: str, name: str, ministry: str = "moi", region: str = "north", **kw: object
) -> Workload:
    fields: dict[str, object] = {
        "room": room, "region": region, "ministry": ministry, "agency": "nfa", "name": name,
        "vcpus": 4, "ram_gib": 16, "disk_gib": 100, "cpu_util_pct": 25,
    }  # fmt: skip
    fields.update(kw)
    return Workload.model_validate(fields)


def test_inventory_csv_round_trips_and_reports_bad_rows_by_line() -> None:
    workloads = generate_inventory(rooms=3, workloads=12, seed=5)
    assert parse_inventory(to_csv(workloads), "rooms.csv") == workloads
    text = (
        "room,ministry,agency,name,vcpus,ram_gib,disk_gib,extra\n"
        "r1,moi,nfa,a,4,8,100,ignored\n"
        "r1,moi,nfa,b,0,8,100,\n"
        "r1,moi,nfa,a,2,8,100,\n"
        "r1,MOI,nfa,c,2,lots,100,\n"
    )
    with pytest.raises(PlanInputError) as caught:
        parse_inventory(text, "rooms.csv")
    lines = [str(p) for p in caught.value.problems]
    assert lines[0].startswith("rooms.csv:3: field 'vcpus': Input should be greater")
    assert "rooms.csv:4: field 'name': 'a' appears twice in room 'r1' (first on line 2)" in lines
    assert any(line.startswith("rooms.csv:5: field 'ministry'") for line in lines)
    assert any("rooms.csv:5: field 'ram_gib'" in line and "'lots'" in line for line in lines)


def test_an_inventory_without_the_required_columns_is_refused() -> None:
    with pytest.raises(PlanInputError, match=r"missing column.*vcpus"):
        parse_inventory("room,ministry,agency,name\nr,moi,nfa,a\n", "x.csv")


def test_the_generator_is_deterministic_and_realistic() -> None:
    first = generate_inventory(rooms=40, workloads=1000, seed=3)
    assert first == generate_inventory(rooms=40, workloads=1000, seed=3)
    assert first != generate_inventory(rooms=40, workloads=1000, seed=4)
    assert len(first) == 1000
    rooms = Counter(w.room for w in first)
    assert len(rooms) == 40
    assert min(rooms.values()) >= 3
    assert max(rooms.values()) > 3 * (1000 / 40)  # heavy tail: some rooms are large
    codes = {m.code for m in MINISTRIES}
    assert {w.ministry for w in first} <= codes
    assert len({w.ministry for w in first}) >= 6
    physical = [w for w in first if w.kind is WorkloadKind.PHYSICAL]
    assert 0.2 < len(physical) / len(first) < 0.5
    mean_util = sum(w.cpu_util_pct for w in first) / len(first)
    assert 5 < mean_util < 30
    with pytest.raises(InvalidRequest, match="workloads must be between"):
        generate_inventory(rooms=10, workloads=5)


def test_rooms_go_to_their_ministry_first_then_their_region() -> None:
    workloads = [vm("fire", "a"), vm("school", "b", ministry="moe", region="south"),
                 vm("museum", "c", ministry="moc", region="east")]  # fmt: skip
    dcs = [
        TargetDataCentre(code="moi-dc", region="central", ministries=["moi"]),
        TargetDataCentre(code="south", region="south"),
        TargetDataCentre(code="north", region="north"),
    ]
    plan = consolidate(workloads, dcs, HOST)
    where = {p.room: (p.datacentre, p.preference) for p in plan.room_plans}
    assert where["fire"] == ("moi-dc", "ministry")
    assert where["school"] == ("south", "region")
    assert where["museum"][1] == "any"
    assert plan.problems == []


def test_space_limits_move_rooms_elsewhere_and_unplaceable_rooms_say_why() -> None:
    # Each room: 10 VMs x 16 GiB = 160 GiB -> 2 hosts (4 U) at least.
    workloads = [vm(f"r{r}", f"v{i}") for r in range(3) for i in range(10)]
    dcs = [
        TargetDataCentre(code="a", ministries=["moi"], space_u=6),
        TargetDataCentre(code="b", space_u=6),
    ]
    plan = consolidate(workloads, dcs, HOST)
    assert all(d.hosts <= (d.max_hosts or 0) for d in plan.datacentres)
    assert len(plan.unplaced) == 1
    assert "fits no data centre: every one is out of space or power" in plan.problems[0]
    assert sum(d.workloads for d in plan.datacentres) == 20


def test_power_budget_is_respected() -> None:
    workloads = [vm(f"r{r}", f"v{i}") for r in range(2) for i in range(10)]
    dcs = [TargetDataCentre(code="a", power_kw=0.5), TargetDataCentre(code="b")]
    plan = consolidate(workloads, dcs, HOST)
    a = next(d for d in plan.datacentres if d.code == "a")
    assert a.power_after_w <= 500
    assert plan.problems == []


def test_known_answer_hosts_lower_bound_power_and_waves() -> None:
    # 16 VMs of 4 vCPU / 15 GiB / 100 GiB at 25 %: RAM binds, 8 per host (130560 MiB).
    workloads = [vm(f"r{r}", f"v{i}", power_w=200, ram_gib=15) for r in range(4) for i in range(4)]
    plan = consolidate(workloads, [TargetDataCentre(code="a")], HOST, ConsolidationOptions(waves=2))
    (dc,) = plan.datacentres
    assert (dc.hosts, dc.lower_bound, plan.hosts_over_lower_bound) == (2, 2, 0.0)
    assert dc.allocation.vcpus == pytest.approx(64 / 256)
    assert dc.cpu_load == pytest.approx(16 / 64)  # 16 threads busy of 2 x 32
    assert dc.power_after_w == pytest.approx(2 * (100 + 300 * 0.25))
    assert plan.power_before_measured_w == 16 * 200
    assert plan.power_saving == pytest.approx(1 - 350 / 3200, abs=1e-4)
    assert [w.workloads for w in plan.waves] == [8, 8]
    assert [w.hosts_lower_bound_after for w in plan.waves] == [1, 2]


def test_bounded_waves_and_oversized_workloads() -> None:
    workloads = [vm(f"r{r}", f"v{i}") for r, n in enumerate([6, 5, 4, 3]) for i in range(n)]
    workloads.append(vm("r0", "giant", ram_gib=4096))
    options = ConsolidationOptions(waves=1, max_wave_workloads=7)
    plan = consolidate(workloads, [TargetDataCentre(code="a")], HOST, options)
    assert all(w.workloads <= 7 for w in plan.waves)
    assert sorted(r for w in plan.waves for r in w.rooms) == ["r0", "r1", "r2", "r3"]
    assert plan.workloads == 18
    assert "r0/giant" in plan.problems[0]
    assert "larger than one h host" in plan.problems[0]


def test_estimated_power_of_unmetered_workloads() -> None:
    server = vm("r", "s", kind="physical", vcpus=8, ram_gib=32, cpu_util_pct=0)
    assert estimated_watts(server) == pytest.approx(110 + 24 + 8)
    assert estimated_watts(vm("r", "v", cpu_util_pct=100)) == pytest.approx(15 + 24)


def test_the_example_targets_have_fifteen_data_centres() -> None:
    targets = load_targets((EXAMPLES / "targets-dcs.yaml").read_text(), "targets-dcs.yaml")
    assert len(targets.datacentres) == 15
    sample = parse_inventory((EXAMPLES / "rooms-sample.csv").read_text(), "rooms-sample.csv")
    plan = consolidate(sample, targets.datacentres, BUILTIN.get("r2-96c-1t"))
    assert plan.problems == []
    assert plan.rooms == len({w.room for w in sample})


@settings(max_examples=25)
@given(
    rooms=st.integers(1, 8),
    extra=st.integers(0, 60),
    seed=st.integers(0, 10_000),
    space=st.one_of(st.none(), st.integers(2, 40)),
)
def test_plans_never_overfill_and_never_beat_the_bound(
    rooms: int, extra: int, seed: int, space: int | None
) -> None:
    workloads = generate_inventory(rooms=rooms, workloads=rooms + extra, seed=seed)
    dcs = [
        TargetDataCentre(code="moi-dc", region="north", ministries=["moi"], space_u=space),
        TargetDataCentre(code="shared", region="south", space_u=space),
    ]
    model = BUILTIN.get("r1-64c-512g")
    plan = consolidate(workloads, dcs, model, ConsolidationOptions(waves=3))
    assert plan == consolidate(workloads, dcs, model, ConsolidationOptions(waves=3))
    caps = (model.usable.vcpus, model.usable.ram_mib, model.usable.disk_gib)
    by_room = {p.room: p.datacentre for p in plan.room_plans}
    for dc in plan.datacentres:
        items = [
            demand(w)
            for w in workloads
            if by_room.get(w.room) == dc.code and all(map(int.__le__, demand(w), caps))
        ]
        assert dc.workloads == len(items)
        assert dc.hosts >= dc.lower_bound == lower_bound(items, caps)
        packing = pack(items, caps)
        assert packing.hosts == dc.hosts
        assert all(all(u <= c for u, c in zip(load, caps, strict=True)) for load in packing.loads)
        if dc.max_hosts is not None and not dc.problems:
            assert dc.hosts <= dc.max_hosts
    waved = [r for w in plan.waves for r in w.rooms]
    assert sorted(waved) == sorted(by_room)
    assert len(plan.room_plans) + len(plan.unplaced) == plan.rooms
