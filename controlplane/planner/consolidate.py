"""Consolidation planning: existing machine rooms -> target data centres -> hosts.

Steps, all deterministic:

1. **Rooms to data centres.** A room moves as a whole (its systems keep their
   neighbours; a room is emptied and closed in one go). Rooms are taken largest first
   and each goes to the data centre it prefers that still has room: one led by its
   ministry first (in its region if there is one), then one in its region, then any;
   among equals the least full. "Has
   room" is judged on an estimate (lower bound plus a margin) against the space
   (``space_u // rack_units`` hosts) and the power budget; where the packing then
   overshoots a limit, that data centre's estimate is raised by the overshoot and the
   rooms are assigned again (a few rounds; what still overshoots is reported).
2. **Workloads to hosts.** Each workload becomes a VM of its size (vCPU, RAM, disk) under
   the host model's usable capacity, i.e. the scheduler's own allocation ratios, packed
   per data centre by :func:`controlplane.planner.packing.pack`. The per-data-centre
   lower bound ``max over dimensions of ceil(demand / host capacity)`` is reported beside
   it; no packing can do better.
3. **Power.** Before: the rooms' measured draw, plus an estimate (stated separately) for
   workloads without one. After: each host at its CPU utilisation, interpolated between
   the model's idle and peak watts.
4. **Migration waves.** Rooms are spread over ``waves`` waves balanced by workload count
   (largest room first into the lightest wave); with ``max_wave_workloads`` more waves are
   added until no wave exceeds it (a single room above the bound gets a wave of its own).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from controlplane.planner.hostmodel import HostModel
from controlplane.planner.inventory import Workload, WorkloadKind
from controlplane.planner.packing import Packing, Vector, lower_bound, pack
from controlplane.planner.target import TargetDataCentre

#: Extra hosts allowed for when judging whether a room still fits a data centre.
ESTIMATE_MARGIN = 0.03
#: Rounds of "assign rooms, pack, add a penalty where the packing overshot a limit".
REPAIR_ROUNDS = 6


class ConsolidationOptions(BaseModel):
    """How to plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    waves: int = Field(4, ge=1, le=1000)
    max_wave_workloads: int | None = Field(None, ge=1, le=10_000_000)


class Dimensions(BaseModel):
    """A fraction (0..1) per resource."""

    vcpus: float
    ram: float
    disk: float


class DcPlan(BaseModel):
    """One target data centre after consolidation."""

    code: str
    name: str
    region: str
    ministries: list[str]
    rooms: int
    workloads: int
    vcpus: int
    ram_gib: float
    disk_gib: int
    hosts: int
    lower_bound: int
    max_hosts: int | None
    allocation: Dimensions = Field(description="allocated / usable capacity of its hosts")
    cpu_load: float = Field(description="measured CPU use / hardware threads of its hosts")
    power_after_w: float
    power_budget_w: float | None
    problems: list[str] = []


class RoomPlan(BaseModel):
    """Where one room goes, and when."""

    room: str
    ministry: str
    region: str | None
    workloads: int
    datacentre: str | None
    wave: int | None
    preference: str = Field(description="ministry, region or any: why this data centre")


class WavePlan(BaseModel):
    """One migration wave."""

    wave: int
    rooms: list[str]
    workloads: int
    vcpus: int
    ram_gib: float
    power_before_w: float = Field(description="draw of the rooms it empties (measured+estimated)")
    datacentres: list[str]
    hosts_lower_bound_after: int = Field(
        description="hosts needed at least once this wave has moved (all data centres)"
    )


class ConsolidationPlan(BaseModel):
    """The plan: hosts per data centre, the lower bound, power and waves."""

    host_model: str
    host_usable: dict[str, int]
    rooms: int
    workloads: int
    vcpus: int
    ram_gib: float
    disk_gib: int
    hosts: int
    lower_bound: int = Field(description="sum over data centres of their lower bounds")
    lower_bound_pooled: int = Field(
        description="the bound if every workload could go anywhere (ignores the room split)"
    )
    hosts_over_lower_bound: float = Field(description="hosts / lower_bound - 1")
    power_before_measured_w: float
    power_before_estimated_w: float = Field(description="estimate for workloads without a draw")
    power_after_w: float
    power_saving: float = Field(description="1 - after / before (measured + estimated)")
    datacentres: list[DcPlan]
    waves: list[WavePlan]
    room_plans: list[RoomPlan]
    unplaced: list[RoomPlan]
    problems: list[str]
    packing_methods: dict[str, str]


# -- helpers ---------------------------------------------------------------------------------


def estimated_watts(w: Workload) -> float:
    """A workload's draw in its old room when it was not measured: a physical server by a
    linear model in cores and RAM; a VM by its share of a lightly consolidated old host."""
    busy = w.cpu_util_pct / 100
    if w.kind is WorkloadKind.PHYSICAL:
        return 110 + 3.0 * w.vcpus + 0.25 * w.ram_gib + busy * (120 + 5.0 * w.vcpus)
    return 15 + 6.0 * w.vcpus * (0.3 + 0.7 * busy)


def demand(w: Workload) -> Vector:
    """A workload as a VM: (vCPU, RAM MiB, disk GiB)."""
    return (w.vcpus, w.ram_mib, w.disk_gib)


@dataclass
class _Room:
    name: str
    ministry: str
    region: str | None
    members: list[int]
    total: list[int]
    cpu_threads: float
    measured_w: float
    estimated_w: float

    @property
    def before_w(self) -> float:
        return self.measured_w + self.estimated_w


@dataclass
class _Dc:
    target: TargetDataCentre
    max_hosts: int | None
    budget_w: float | None
    total: list[int] = field(default_factory=lambda: [0, 0, 0])
    cpu_threads: float = 0.0
    rooms: list[_Room] = field(default_factory=list)
    #: Hosts added to every estimate after a packing overshot the space or power.
    penalty: int = 0

    def estimate(
        self, extra: Sequence[int], extra_cpu: float, model: HostModel
    ) -> tuple[int, float]:
        """Hosts and watts if ``extra`` were added (lower bound plus a margin)."""
        usable = model.usable
        caps = (usable.vcpus, usable.ram_mib, usable.disk_gib)
        share = max((t + e) / c for t, e, c in zip(self.total, extra, caps, strict=True))
        hosts = math.ceil(share * (1 + ESTIMATE_MARGIN) - 1e-9) + (1 + self.penalty if share else 0)
        threads = hosts * model.physical.vcpus
        cpu = (self.cpu_threads + extra_cpu) / threads if threads else 0.0
        return hosts, hosts * model.watts(cpu)

    def fill(self, model: HostModel) -> float:
        hosts, _ = self.estimate((0, 0, 0), 0.0, model)
        return hosts / self.max_hosts if self.max_hosts else 0.0


def _rooms(workloads: Sequence[Workload]) -> list[_Room]:
    rooms: dict[str, _Room] = {}
    for i, w in enumerate(workloads):
        room = rooms.get(w.room)
        if room is None:
            room = rooms[w.room] = _Room(w.room, w.ministry, w.region, [], [0, 0, 0], 0, 0, 0)
        room.members.append(i)
        for d, amount in enumerate(demand(w)):
            room.total[d] += amount
        room.cpu_threads += w.vcpus * w.cpu_util_pct / 100
        if w.power_w is not None:
            room.measured_w += w.power_w
        else:
            room.estimated_w += estimated_watts(w)
    return list(rooms.values())


def _preference(room: _Room, dc: TargetDataCentre) -> tuple[bool, bool, str]:
    """Sort key part (ministry differs, region differs) and the preference met."""
    ministry = room.ministry in dc.ministries
    region = room.region is not None and room.region == dc.region
    label = "ministry" if ministry else "region" if region else "any"
    return not ministry, not region, label


def _assign(
    rooms: list[_Room], dcs: list[_Dc], model: HostModel
) -> tuple[dict[str, tuple[_Dc, str]], dict[str, str]]:
    """Room name -> (data centre, preference met); room name -> why it stays unplaced."""
    usable = model.usable
    caps = (usable.vcpus, usable.ram_mib, usable.disk_gib)
    order = sorted(
        rooms, key=lambda r: (-max(t / c for t, c in zip(r.total, caps, strict=True)), r.name)
    )
    placed: dict[str, tuple[_Dc, str]] = {}
    unplaced: dict[str, str] = {}
    for room in order:
        ranked = sorted(
            dcs,
            key=lambda dc: (*_preference(room, dc.target)[:2], dc.fill(model), dc.target.code),
        )
        chosen: _Dc | None = None
        for dc in ranked:
            hosts, watts = dc.estimate(room.total, room.cpu_threads, model)
            if dc.max_hosts is not None and hosts > dc.max_hosts:
                continue
            if dc.budget_w is not None and watts > dc.budget_w:
                continue
            chosen = dc
            break
        if chosen is None:
            need = max(math.ceil(t / c) for t, c in zip(room.total, caps, strict=True))
            unplaced[room.name] = (
                f"room {room.name} ({len(room.members)} workloads, about {need} host(s) of "
                f"{model.name}) fits no data centre: every one is out of space or power"
            )
            continue
        for d in range(3):
            chosen.total[d] += room.total[d]
        chosen.cpu_threads += room.cpu_threads
        chosen.rooms.append(room)
        placed[room.name] = (chosen, _preference(room, chosen.target)[2])
    return placed, unplaced


def _waves(rooms: Sequence[_Room], options: ConsolidationOptions) -> list[list[_Room]]:
    """Balanced waves (largest room first into the lightest wave), bounded if asked."""
    if not rooms:
        return []
    total = sum(len(r.members) for r in rooms)
    count = min(len(rooms), options.waves)
    bound = options.max_wave_workloads
    if bound is not None:
        count = min(len(rooms), max(count, math.ceil(total / bound)))
    order = sorted(rooms, key=lambda r: (-len(r.members), r.name))
    while True:
        heap = [(0, i) for i in range(count)]
        waves: list[list[_Room]] = [[] for _ in range(count)]
        for room in order:
            load, i = heapq.heappop(heap)
            waves[i].append(room)
            heapq.heappush(heap, (load + len(room.members), i))
        worst = max(load for load, _ in heap)
        over = [w for w in waves if len(w) > 1 and sum(len(r.members) for r in w) > (bound or 0)]
        if bound is None or worst <= bound or not over or count >= len(rooms):
            break
        count += 1
    # Smaller waves first: the first wave is the pilot.
    waves.sort(key=lambda w: (sum(len(r.members) for r in w), min(r.name for r in w)))
    return [sorted(w, key=lambda r: r.name) for w in waves if w]


def _dims(total: Sequence[int], caps: Sequence[int], hosts: int) -> Dimensions:
    def ratio(a: int, b: int) -> float:
        return round(a / (b * hosts), 4) if b and hosts else 0.0

    return Dimensions(
        vcpus=ratio(total[0], caps[0]), ram=ratio(total[1], caps[1]), disk=ratio(total[2], caps[2])
    )


# -- the planner -------------------------------------------------------------------------------


def consolidate(
    workloads: Sequence[Workload],
    targets: Sequence[TargetDataCentre],
    model: HostModel,
    options: ConsolidationOptions | None = None,
) -> ConsolidationPlan:
    """Plan moving ``workloads`` (grouped by room) into ``targets`` on hosts of ``model``."""
    options = options or ConsolidationOptions()
    usable = model.usable
    caps: Vector = (usable.vcpus, usable.ram_mib, usable.disk_gib)
    problems: list[str] = []
    too_big = [w for w in workloads if any(s > c for s, c in zip(demand(w), caps, strict=True))]
    for w in too_big[:10]:
        problems.append(
            f"{w.room}/{w.name} ({w.vcpus} vCPU, {w.ram_gib:g} GiB RAM, {w.disk_gib} GiB disk) "
            f"is larger than one {model.name} host can hold ({usable.describe()}); "
            "it is left out: choose a larger host model or split it"
        )
    if len(too_big) > 10:
        problems.append(f"... and {len(too_big) - 10} more workloads too large for one host")
    excluded = {id(w) for w in too_big}
    kept = [w for w in workloads if id(w) not in excluded]
    rooms = _rooms(kept)
    cache: dict[tuple[str, tuple[str, ...]], Packing] = {}
    penalty: dict[str, int] = {}
    for _round in range(REPAIR_ROUNDS):
        dcs = [
            _Dc(
                dc,
                dc.max_hosts(model),
                None if dc.power_kw is None else dc.power_kw * 1000,
                penalty=penalty.get(dc.code, 0),
            )
            for dc in targets
        ]
        placed, unplaced_reasons = _assign(rooms, dcs, model)
        packings: dict[str, Packing] = {}
        overshot = False
        for dc in dcs:
            key = (dc.target.code, tuple(r.name for r in dc.rooms))
            if key not in cache:
                cache[key] = pack([demand(kept[i]) for r in dc.rooms for i in r.members], caps)
            packing = packings[dc.target.code] = cache[key]
            extra = 0 if dc.max_hosts is None else packing.hosts - dc.max_hosts
            threads = packing.hosts * model.physical.vcpus
            watts = packing.hosts * model.watts(dc.cpu_threads / threads) if threads else 0.0
            if dc.budget_w is not None and watts > dc.budget_w:
                per_host = watts / packing.hosts
                extra = max(extra, math.ceil((watts - dc.budget_w) / per_host))
            if extra > 0:
                penalty[dc.target.code] = penalty.get(dc.target.code, 0) + extra
                overshot = True
        if not overshot:
            break
    problems += list(unplaced_reasons.values())

    dc_plans: list[DcPlan] = []
    methods: dict[str, str] = {}
    for dc in dcs:
        members = [i for room in dc.rooms for i in room.members]
        packing = packings[dc.target.code]
        hosts = packing.hosts
        methods[dc.target.code] = packing.method
        threads = hosts * model.physical.vcpus
        cpu = dc.cpu_threads / threads if threads else 0.0
        # The linear power model makes the sum over hosts equal hosts x draw at the mean.
        watts = hosts * model.watts(cpu) if hosts else 0.0
        dc_problems = []
        if dc.max_hosts is not None and hosts > dc.max_hosts:
            dc_problems.append(
                f"{dc.target.code}: the packing needs {hosts} hosts but there is space for "
                f"{dc.max_hosts} ({dc.target.space_u} U at {model.rack_units} U per host)"
            )
        if dc.budget_w is not None and watts > dc.budget_w:
            dc_problems.append(
                f"{dc.target.code}: {watts / 1000:.1f} kW exceeds the power budget "
                f"of {dc.target.power_kw} kW"
            )
        problems += dc_problems
        dc_plans.append(
            DcPlan(
                code=dc.target.code,
                name=dc.target.name,
                region=dc.target.region,
                ministries=list(dc.target.ministries),
                rooms=len(dc.rooms),
                workloads=len(members),
                vcpus=dc.total[0],
                ram_gib=round(dc.total[1] / 1024, 1),
                disk_gib=dc.total[2],
                hosts=hosts,
                lower_bound=packing.lower_bound,
                max_hosts=dc.max_hosts,
                allocation=_dims(dc.total, caps, hosts),
                cpu_load=round(cpu, 4),
                power_after_w=round(watts, 1),
                power_budget_w=dc.budget_w,
                problems=dc_problems,
            )
        )

    placed_rooms = [r for r in rooms if r.name in placed]
    waves = _waves(placed_rooms, options)
    wave_of = {room.name: n for n, wave in enumerate(waves, start=1) for room in wave}
    wave_plans: list[WavePlan] = []
    moved: dict[str, list[int]] = {dc.target.code: [0, 0, 0] for dc in dcs}
    for n, wave in enumerate(waves, start=1):
        for room in wave:
            code = placed[room.name][0].target.code
            for d in range(3):
                moved[code][d] += room.total[d]
        wave_plans.append(
            WavePlan(
                wave=n,
                rooms=[r.name for r in wave],
                workloads=sum(len(r.members) for r in wave),
                vcpus=sum(r.total[0] for r in wave),
                ram_gib=round(sum(r.total[1] for r in wave) / 1024, 1),
                power_before_w=round(sum(r.before_w for r in wave), 1),
                datacentres=sorted({placed[r.name][0].target.code for r in wave}),
                hosts_lower_bound_after=sum(lower_bound([t], caps) for t in moved.values()),
            )
        )

    def room_plan(room: _Room) -> RoomPlan:
        where = placed.get(room.name)
        return RoomPlan(
            room=room.name,
            ministry=room.ministry,
            region=room.region,
            workloads=len(room.members),
            datacentre=where[0].target.code if where else None,
            wave=wave_of.get(room.name),
            preference=where[1] if where else "unplaced",
        )

    room_plans = [room_plan(r) for r in sorted(rooms, key=lambda r: r.name)]
    hosts = sum(p.hosts for p in dc_plans)
    bound = sum(p.lower_bound for p in dc_plans)
    measured = sum(r.measured_w for r in rooms)
    estimated = sum(r.estimated_w for r in rooms)
    moved_before = sum(r.before_w for r in placed_rooms)
    after = sum(p.power_after_w for p in dc_plans)
    return ConsolidationPlan(
        host_model=model.name,
        host_usable={"vcpus": caps[0], "ram_mib": caps[1], "disk_gib": caps[2]},
        rooms=len(rooms),
        workloads=len(kept),
        vcpus=sum(r.total[0] for r in rooms),
        ram_gib=round(sum(r.total[1] for r in rooms) / 1024, 1),
        disk_gib=sum(r.total[2] for r in rooms),
        hosts=hosts,
        lower_bound=bound,
        lower_bound_pooled=lower_bound(
            [demand(kept[i]) for r in placed_rooms for i in r.members], caps
        ),
        hosts_over_lower_bound=round(hosts / bound - 1, 4) if bound else 0.0,
        power_before_measured_w=round(measured, 1),
        power_before_estimated_w=round(estimated, 1),
        power_after_w=round(after, 1),
        power_saving=round(1 - after / moved_before, 4) if moved_before else 0.0,
        datacentres=dc_plans,
        waves=wave_plans,
        room_plans=[p for p in room_plans if p.datacentre is not None],
        unplaced=[p for p in room_plans if p.datacentre is None],
        problems=problems,
        packing_methods=methods,
    )
