"""Sizing ("hardware later"): measured usage of a workload -> hosts to buy, per model and
data centre, with utilisation, power and price, and the cheapest model that meets the
targets.

Input: :class:`Measurements` (per group of VMs: count, flavor, measured peak/p95/mean of
CPU, RAM and disk as fractions of the flavor) and :class:`SizingTargets` (growth, headroom,
redundancy, which statistic to size on), the candidate :class:`HostModel` s and the
:class:`TargetDataCentre` s. Output: :class:`SizingResult`.

Rules (documented in docs/planning.md):

- ``vms = ceil(count x growth)`` per group, spread evenly over the group's data centres
  (all of them unless the group names some).
- Each VM must fit a host twice over: its *allocation* (flavor vCPU, RAM, disk) within the
  host's usable capacity under the allocation ratios (what govcloud's scheduler enforces),
  and its measured *load* (``flavor x utilisation[basis]``) within ``1 - headroom`` of the
  host's physical capacity. Both are packed together (six dimensions) by
  :func:`controlplane.planner.packing.pack`; that gives N hosts per data centre.
- Redundancy ``n+k`` adds k hosts per data centre: with any k hosts down, the remaining N
  still hold every VM within the headroom. Utilisation is reported at N+k hosts (normal
  operation) and at N (after k failures).
- Power per host is interpolated between idle and peak watts by CPU load utilisation;
  cost = hosts x price + energy over ``years`` at ``energy_price_per_kwh``.
- A model is rejected, with the reason and the numbers, when a VM does not fit one of its
  hosts, or a data centre lacks the space or power for the hosts needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.errors import InvalidRequest
from controlplane.domain.names import Code, Name, Text, require_unique
from controlplane.planner.hostmodel import HostModel, HostModelCatalog
from controlplane.planner.packing import Vector, fits, pack
from controlplane.planner.target import TargetDataCentre
from controlplane.planner.yamlfile import load_model

HOURS_PER_YEAR = 8760
#: Names of the six packed dimensions, in vector order.
PACKED: tuple[str, ...] = (
    "allocated vCPU",
    "allocated RAM MiB",
    "allocated disk GiB",
    "CPU load (milli-threads)",
    "RAM load MiB",
    "disk load GiB",
)
#: The data centre used when none is given.
DEFAULT_DC = TargetDataCentre(code="default", name="Default data centre")


class Redundancy(StrEnum):
    """Spare hosts per data centre: none, one or two may fail without losing capacity."""

    NONE = "none"
    N_PLUS_1 = "n+1"
    N_PLUS_2 = "n+2"

    @property
    def spare(self) -> int:
        """Extra hosts per data centre."""
        return {"none": 0, "n+1": 1, "n+2": 2}[self.value]


class Basis(StrEnum):
    """Which measured statistic the load is sized on."""

    PEAK = "peak"
    P95 = "p95"
    MEAN = "mean"


class Utilisation(BaseModel):
    """Measured use of one resource as a fraction (0..1) of the flavor's amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    peak: float = Field(ge=0, le=1)
    p95: float = Field(ge=0, le=1)
    mean: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.mean <= self.p95 <= self.peak:
            raise ValueError(
                f"expected mean <= p95 <= peak; got mean {self.mean}, p95 {self.p95}, "
                f"peak {self.peak}"
            )
        return self

    def at(self, basis: Basis) -> float:
        """The statistic named by ``basis``."""
        value: float = getattr(self, basis.value)
        return value


FULL = Utilisation(peak=1.0, p95=1.0, mean=1.0)


class FlavorSize(BaseModel):
    """The size each VM of a group was given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = ""
    vcpus: int = Field(ge=1, le=4096)
    ram_mib: int = Field(ge=1, le=100_000_000)
    disk_gib: int = Field(0, ge=0, le=1_000_000)


class MeasuredGroup(BaseModel):
    """A group of identical VMs and what they were measured to use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    count: int = Field(ge=1, le=1_000_000)
    flavor: FlavorSize
    cpu: Utilisation
    ram: Utilisation
    disk: Utilisation = FULL
    datacentres: list[Code] = Field(
        [], description="where this group runs (default: spread over every data centre)"
    )


class Measurements(BaseModel):
    """Measured usage of one workload (a Cloud Open Lab trial or a hand-made file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workload: Text = ""
    groups: list[MeasuredGroup] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        require_unique((g.name for g in self.groups), "group names")
        return self


class SizingTargets(BaseModel):
    """What the hardware must achieve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    growth: float = Field(1.0, gt=0, le=100, description="VM count multiplier for growth")
    headroom: float = Field(
        0.2, ge=0, lt=1, description="fraction of each host's real capacity kept free"
    )
    redundancy: Redundancy = Redundancy.NONE
    basis: Basis = Basis.P95
    years: int = Field(3, ge=1, le=20, description="term for energy cost (3-year lease)")
    energy_price_per_kwh: float = Field(0.0, ge=0, le=1000)


# -- result ---------------------------------------------------------------------------------


class Dimensions(BaseModel):
    """A fraction (0..1) per resource."""

    vcpus: float
    ram: float
    disk: float


class DcSizing(BaseModel):
    """Hosts of one model in one data centre."""

    datacentre: str
    vms: int
    hosts_needed: int = Field(description="N: hosts that carry the load within the headroom")
    spare: int = Field(description="k of N+k")
    hosts: int = Field(description="N+k: hosts to buy")
    lower_bound: int = Field(description="no packing of these VMs needs fewer than this N")
    max_hosts: int | None
    allocation: Dimensions = Field(description="allocated / usable, at N+k hosts")
    load: Dimensions = Field(description="measured load / physical capacity, at N+k hosts")
    load_after_failures: Dimensions = Field(description="the same with k hosts down (at N)")
    watts_idle: float
    watts_peak: float
    watts_expected: float
    price: float
    problems: list[str] = []


class ModelSizing(BaseModel):
    """One candidate model over all data centres."""

    model: str
    description: str
    vcpus_per_host: int
    ram_gib_per_host: int
    disk_gib_per_host: int
    price_per_host: float
    feasible: bool
    reasons: list[str] = Field(description="why the model does not meet the targets")
    datacentres: list[DcSizing]
    hosts: int
    rack_units: int
    price: float
    watts_expected: float
    energy_kwh_per_year: float
    energy_cost: float
    total_cost: float = Field(description="price + energy cost over the term")


class Demand(BaseModel):
    """What the workload needs after growth."""

    vms: int
    vcpus: int
    ram_mib: int
    disk_gib: int
    cpu_load_threads: float
    ram_load_mib: float
    disk_load_gib: float


class SizingResult(BaseModel):
    """The outcome: every candidate sized, and the recommendation."""

    workload: str
    currency: str
    targets: SizingTargets
    demand: Demand
    groups: list[MeasuredGroup]
    models: list[ModelSizing]
    recommended: str | None
    recommendation: str


# -- engine ---------------------------------------------------------------------------------


def _up(x: float) -> int:
    return math.ceil(round(x, 6))


def _down(x: float) -> int:
    return math.floor(round(x, 6))


def vm_vector(group: MeasuredGroup, basis: Basis) -> Vector:
    """One VM of ``group`` as the six packed dimensions (see :data:`PACKED`)."""
    f = group.flavor
    return (
        f.vcpus,
        f.ram_mib,
        f.disk_gib,
        _up(f.vcpus * 1000 * group.cpu.at(basis)),
        _up(f.ram_mib * group.ram.at(basis)),
        _up(f.disk_gib * group.disk.at(basis)),
    )


def host_vector(model: HostModel, headroom: float) -> Vector:
    """One host of ``model`` in the six packed dimensions."""
    usable, physical = model.usable, model.physical
    keep = 1.0 - headroom
    return (
        usable.vcpus,
        usable.ram_mib,
        usable.disk_gib,
        _down(physical.vcpus * 1000 * keep),
        _down(physical.ram_mib * keep),
        _down(physical.disk_gib * keep),
    )


def spread(
    measurements: Measurements, targets: SizingTargets, datacentres: Sequence[TargetDataCentre]
) -> dict[str, list[tuple[MeasuredGroup, int]]]:
    """VMs per group per data centre after growth (even split, remainder to the first)."""
    codes = [dc.code for dc in datacentres]
    for gi, group in enumerate(measurements.groups):
        for di, code in enumerate(group.datacentres):
            if code not in codes:
                field = f"groups.{gi}.datacentres.{di}"
                raise InvalidRequest(
                    f"{field}: group {group.name!r} names data centre {code!r}, which is not "
                    f"a target (targets: {', '.join(codes)})",
                    code="planner.unknown_datacentre",
                    field=field,
                    value=code,
                )
    out: dict[str, list[tuple[MeasuredGroup, int]]] = {code: [] for code in codes}
    for group in measurements.groups:
        vms = _up(group.count * targets.growth)
        where = group.datacentres or codes
        base, extra = divmod(vms, len(where))
        for i, code in enumerate(where):
            n = base + (1 if i < extra else 0)
            if n:
                out[code].append((group, n))
    return out


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0


def _dims(
    total: Sequence[int], per_host: Sequence[int], hosts: int, scale: float = 1
) -> Dimensions:
    return Dimensions(
        vcpus=_ratio(total[0] / scale, per_host[0] * hosts),
        ram=_ratio(total[1], per_host[1] * hosts),
        disk=_ratio(total[2], per_host[2] * hosts),
    )


def _size_dc(
    model: HostModel,
    dc: TargetDataCentre,
    groups: Sequence[tuple[MeasuredGroup, int]],
    targets: SizingTargets,
) -> DcSizing:
    host = host_vector(model, targets.headroom)
    items: list[Vector] = []
    for group, n in groups:
        items += [vm_vector(group, targets.basis)] * n
    packing = pack(items, host)
    needed = packing.hosts
    spare = targets.redundancy.spare if needed else 0
    hosts = needed + spare
    totals = [sum(item[d] for item in items) for d in range(len(host))]
    usable, physical = model.usable, model.physical
    alloc_cap = (usable.vcpus, usable.ram_mib, usable.disk_gib)
    phys = (physical.vcpus, physical.ram_mib, physical.disk_gib)
    load = _dims(totals[3:], phys, hosts, scale=1000)
    cpu_u = load.vcpus
    per_host_watts = model.watts(cpu_u)
    max_hosts = dc.max_hosts(model)
    problems = []
    if max_hosts is not None and hosts > max_hosts:
        problems.append(
            f"{dc.code}: needs {hosts} hosts of {model.rack_units} U but has space for "
            f"{max_hosts} ({dc.space_u} U)"
        )
    watts = hosts * per_host_watts
    if dc.power_kw is not None and watts > dc.power_kw * 1000:
        problems.append(
            f"{dc.code}: needs {watts / 1000:.1f} kW but the power budget is {dc.power_kw} kW"
        )
    return DcSizing(
        datacentre=dc.code,
        vms=len(items),
        hosts_needed=needed,
        spare=spare,
        hosts=hosts,
        lower_bound=packing.lower_bound,
        max_hosts=max_hosts,
        allocation=_dims(totals[:3], alloc_cap, hosts),
        load=load,
        load_after_failures=_dims(totals[3:], phys, needed, scale=1000),
        watts_idle=round(hosts * model.idle_watts, 1),
        watts_peak=round(hosts * model.peak_watts, 1),
        watts_expected=round(watts, 1),
        price=round(hosts * model.price, 2),
        problems=problems,
    )


def _misfits(model: HostModel, measurements: Measurements, targets: SizingTargets) -> list[str]:
    """Why a VM of some group cannot fit one empty host of ``model`` (empty: all fit)."""
    host = host_vector(model, targets.headroom)
    reasons = []
    for group in measurements.groups:
        vm = vm_vector(group, targets.basis)
        if fits(vm, host):
            continue
        short = [f"{PACKED[d]} {vm[d]} > {host[d]}" for d in range(len(host)) if vm[d] > host[d]]
        reasons.append(
            f"a VM of group {group.name!r} does not fit one {model.name} host "
            f"(headroom {targets.headroom}): {'; '.join(short)}"
        )
    return reasons


def _size_model(
    model: HostModel,
    measurements: Measurements,
    targets: SizingTargets,
    datacentres: Sequence[TargetDataCentre],
    placed: dict[str, list[tuple[MeasuredGroup, int]]],
) -> ModelSizing:
    reasons = _misfits(model, measurements, targets)
    per_dc = (
        [] if reasons else [_size_dc(model, dc, placed[dc.code], targets) for dc in datacentres]
    )
    for dc in per_dc:
        reasons += dc.problems
    hosts = sum(dc.hosts for dc in per_dc)
    price = round(hosts * model.price, 2)
    watts = round(sum(dc.watts_expected for dc in per_dc), 1)
    kwh = round(watts * HOURS_PER_YEAR / 1000, 1)
    energy = round(kwh * targets.years * targets.energy_price_per_kwh, 2)
    return ModelSizing(
        model=model.name,
        description=model.description,
        vcpus_per_host=model.vcpus,
        ram_gib_per_host=model.ram_gib,
        disk_gib_per_host=model.disk_gib,
        price_per_host=model.price,
        feasible=not reasons,
        reasons=reasons,
        datacentres=per_dc,
        hosts=hosts,
        rack_units=hosts * model.rack_units,
        price=price,
        watts_expected=watts,
        energy_kwh_per_year=kwh,
        energy_cost=energy,
        total_cost=round(price + energy, 2),
    )


def _demand(placed: dict[str, list[tuple[MeasuredGroup, int]]], basis: Basis) -> Demand:
    vms = vcpus = ram = disk = 0
    cpu_load = ram_load = disk_load = 0.0
    for groups in placed.values():
        for group, n in groups:
            f = group.flavor
            vms += n
            vcpus += n * f.vcpus
            ram += n * f.ram_mib
            disk += n * f.disk_gib
            cpu_load += n * f.vcpus * group.cpu.at(basis)
            ram_load += n * f.ram_mib * group.ram.at(basis)
            disk_load += n * f.disk_gib * group.disk.at(basis)
    return Demand(
        vms=vms,
        vcpus=vcpus,
        ram_mib=ram,
        disk_gib=disk,
        cpu_load_threads=round(cpu_load, 3),
        ram_load_mib=round(ram_load, 1),
        disk_load_gib=round(disk_load, 1),
    )


def size(
    measurements: Measurements,
    host_models: HostModelCatalog,
    targets: SizingTargets | None = None,
    datacentres: Sequence[TargetDataCentre] = (),
) -> SizingResult:
    """Size ``measurements`` on every candidate model; recommend the cheapest feasible one
    (lowest total cost, then fewest hosts, then name)."""
    targets = targets or SizingTargets()
    dcs = list(datacentres) or [DEFAULT_DC]
    placed = spread(measurements, targets, dcs)
    models = [_size_model(m, measurements, targets, dcs, placed) for m in host_models.models]
    feasible = sorted(
        (m for m in models if m.feasible), key=lambda m: (m.total_cost, m.hosts, m.model)
    )
    currency = host_models.currency
    if feasible:
        best = feasible[0]
        recommended: str | None = best.model
        text = (
            f"{best.model}: {best.hosts} hosts, {best.total_cost:,.0f} {currency} over "
            f"{targets.years} years, the lowest cost of {len(feasible)} model(s) meeting the "
            "targets"
        )
        if len(feasible) > 1:
            runner = feasible[1]
            text += f" (next: {runner.model} at {runner.total_cost:,.0f} {currency})"
    else:
        recommended = None
        text = "no host model meets the targets: " + "; ".join(
            f"{m.model}: {m.reasons[0]}" for m in models if m.reasons
        )
    return SizingResult(
        workload=measurements.workload,
        currency=currency,
        targets=targets,
        demand=_demand(placed, targets.basis),
        groups=list(measurements.groups),
        models=models,
        recommended=recommended,
        recommendation=text,
    )


def load_measurements(text: str, filename: str) -> Measurements:
    """Parse a measurements YAML file's text (errors name file, line, field and value)."""
    return load_model(text, filename, Measurements, expected="a mapping with 'groups'")
