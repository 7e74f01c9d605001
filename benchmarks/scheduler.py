"""(f) Scheduler: decision-only latency of ``select`` (no database, no commit).

A seeded fleet of 1,000 and 10,000 roomy hosts in 3 data centres (about half full, some in
maintenance, a fifth with an ``ssd`` trait) receives m1.small requests for the whole fleet,
``count`` 1 and 33, by ``spread`` and by ``pack``. After each decision its claims are
applied to the fleet (untimed, with ``Fleet.replace``, as the store's fleet index does), so
the fleet fills as it would in service. Reported per configuration: p50/p99 of

- ``select`` on a kept :class:`~controlplane.scheduler.fleet.Fleet` (what a decision costs
  when the store keeps the snapshot between decisions),
- ``select`` on a tuple of hosts (the fleet is built per call with ``Fleet.of``, as for
  dry runs, drains and the pending loop),
- the per-host reference implementation the vectorised one replaced
  (``tests/unit/scheduler_oracle.py``, the *before* figure; fewer samples at 10,000),

plus the cost of ``Fleet.of`` and of ``Fleet.replace`` for one host. Every vectorised plan
is checked equal to the oracle's on the sampled oracle decisions.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

from benchmarks import DATACENTRES, FLAVOR, ROOMY_HOST, Context, Result, Row, latency_ms
from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources
from controlplane.scheduler import HostView, PlacementRequest, Plan, select
from controlplane.scheduler.fleet import Fleet
from tests.unit import scheduler_oracle

NAME = "scheduler"
COLUMNS = [
    "hosts",
    "policy",
    "count",
    "decisions",
    "fleet_p50_ms",
    "fleet_p99_ms",
    "fleet_cpu_p50_ms",
    "fleet_cpu_p99_ms",
    "tuple_p50_ms",
    "tuple_p99_ms",
    "oracle_decisions",
    "oracle_p50_ms",
    "oracle_p99_ms",
    "speedup_p50",
]


def make_hosts(n: int, seed: int = 1) -> list[HostView]:
    """The benchmark fleet: ``n`` roomy hosts, about half full (seeded)."""
    rnd = random.Random(seed)
    hosts = []
    for i in range(n):
        instances = rnd.randint(0, ROOMY_HOST.vcpus)
        hosts.append(
            HostView(
                id=f"host-{i:05d}",
                name=f"{DATACENTRES[i % 3]}-h{i:05d}",
                datacentre=DATACENTRES[i % 3],
                state=HostState.MAINTENANCE.value if rnd.random() < 0.02 else "active",
                usable_vcpus=ROOMY_HOST.vcpus,
                usable_ram_mib=ROOMY_HOST.ram_mib,
                usable_disk_gib=ROOMY_HOST.disk_gib,
                used_vcpus=instances * FLAVOR.vcpus,
                used_ram_mib=instances * FLAVOR.ram_mib,
                used_disk_gib=instances * FLAVOR.disk_gib,
                traits=frozenset({"ssd"}) if rnd.random() < 0.2 else frozenset(),
            )
        )
    return hosts


def _apply(fleet: Fleet, plan: Plan) -> Fleet:
    """The fleet after ``plan`` is committed (claims added, generations bumped)."""
    changed = []
    for position, n in Counter(fleet.position(p.host_id) for p in plan.placements).items():
        h = fleet.host(position if position is not None else -1)
        changed.append(
            HostView(
                h.id,
                h.name,
                h.datacentre,
                h.state,
                h.usable_vcpus,
                h.usable_ram_mib,
                h.usable_disk_gib,
                h.used_vcpus + n * FLAVOR.vcpus,
                h.used_ram_mib + n * FLAVOR.ram_mib,
                h.used_disk_gib + n * FLAVOR.disk_gib,
                h.traits,
                h.datacentre_active,
                h.generation + 1,
            )
        )
    return fleet.replace(changed)


Select = Callable[[Fleet | Sequence[HostView], PlacementRequest, int], Plan]


def _timed(
    choose: Select, view: Fleet | Sequence[HostView], request: PlacementRequest, seed: int
) -> tuple[Plan, float, float]:
    """The plan, its wall-clock seconds and this process's CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    plan = choose(view, request, seed)
    return plan, time.perf_counter() - start, time.process_time() - cpu


def _oracle(view: Fleet | Sequence[HostView], request: PlacementRequest, seed: int) -> Plan:
    assert not isinstance(view, Fleet)
    return scheduler_oracle.select(view, request, seed)


def measure_scheduler(
    hosts: int, policy: PlacementPolicy, count: int, decisions: int, oracle_decisions: int
) -> Row:
    """One configuration: ``decisions`` timed decisions on a filling fleet."""
    fleet = Fleet.of(make_hosts(hosts))
    request = PlacementRequest(
        Resources(vcpus=FLAVOR.vcpus, ram_mib=FLAVOR.ram_mib, disk_gib=FLAVOR.disk_gib),
        count=count,
        policy=policy,
    )
    kept: list[float] = []
    kept_cpu: list[float] = []
    tupled: list[float] = []
    before: list[float] = []
    every = max(1, decisions // max(oracle_decisions, 1)) if oracle_decisions else 0
    for i in range(decisions):
        plan, seconds, cpu = _timed(select, fleet, request, i)
        kept.append(seconds)
        kept_cpu.append(cpu)
        view = fleet.hosts
        again, seconds, _ = _timed(select, view, request, i)
        tupled.append(seconds)
        if every and i % every == 0 and len(before) < oracle_decisions:
            expected, seconds, _ = _timed(_oracle, view, request, i)
            before.append(seconds)
            if expected != plan:
                raise RuntimeError(f"decision {i}: the vectorised plan differs from the oracle's")
        if again != plan:
            raise RuntimeError(f"decision {i}: the plan on a tuple differs from the Fleet's")
        fleet = _apply(fleet, plan)
    fast = latency_ms(kept, "fleet_")
    slow = latency_ms(before, "oracle_")
    speedup = None
    if before and fast["fleet_p50_ms"]:
        speedup = round(float(slow["oracle_p50_ms"] or 0) / float(fast["fleet_p50_ms"]), 1)
    tuple_ms = latency_ms(tupled, "tuple_")
    cpu_ms = latency_ms(kept_cpu, "fleet_cpu_")
    return {
        "hosts": hosts,
        "policy": policy.value,
        "count": count,
        "decisions": decisions,
        "fleet_p50_ms": fast["fleet_p50_ms"],
        "fleet_p99_ms": fast["fleet_p99_ms"],
        "fleet_cpu_p50_ms": cpu_ms["fleet_cpu_p50_ms"],
        "fleet_cpu_p99_ms": cpu_ms["fleet_cpu_p99_ms"],
        "tuple_p50_ms": tuple_ms["tuple_p50_ms"],
        "tuple_p99_ms": tuple_ms["tuple_p99_ms"],
        "oracle_decisions": len(before),
        "oracle_p50_ms": slow["oracle_p50_ms"],
        "oracle_p99_ms": slow["oracle_p99_ms"],
        "speedup_p50": speedup,
    }


def measure_fleet_upkeep(hosts: int, repeats: int = 50) -> Row:
    """``Fleet.of`` for the whole fleet and ``Fleet.replace`` of one host (p50, ms)."""
    view = make_hosts(hosts)
    built = []
    for _ in range(max(3, repeats // 10)):
        start = time.perf_counter()
        fleet = Fleet.of(view)
        built.append(time.perf_counter() - start)
    fleet.position(view[0].id)  # the id index, built once per fleet lineage
    replaced = []
    for i in range(repeats):
        h = view[(i * 7919) % hosts]
        changed = HostView(h.id, h.name, h.datacentre, h.state, 32, 65536, 4000, i % 32)
        start = time.perf_counter()
        fleet = fleet.replace([changed])
        replaced.append(time.perf_counter() - start)
    return {
        "hosts": hosts,
        "fleet_of_p50_ms": latency_ms(built)["p50_ms"],
        "replace_1_p50_ms": latency_ms(replaced)["p50_ms"],
        "replace_1_p99_ms": latency_ms(replaced)["p99_ms"],
    }


def run(context: Context) -> Result:
    """Every size, policy and count; the oracle on a sample of the decisions."""
    decisions = 100 if context.quick else 400
    rows = []
    upkeep = []
    for hosts in (1_000, 10_000):
        upkeep.append(measure_fleet_upkeep(hosts))
        for policy in (PlacementPolicy.SPREAD, PlacementPolicy.PACK):
            for count in (1, 33):
                context.progress(f"scheduler: {hosts} hosts, {policy.value}, count {count}")
                oracle = (20 if hosts <= 1_000 else 8) if context.quick else 40
                rows.append(measure_scheduler(hosts, policy, count, decisions, oracle))
    notes = [
        f"{u['hosts']} hosts: Fleet.of {u['fleet_of_p50_ms']} ms; Fleet.replace of one host "
        f"p50 {u['replace_1_p50_ms']} ms, p99 {u['replace_1_p99_ms']} ms."
        for u in upkeep
    ]
    notes.append(
        "fleet_*: select on a kept Fleet (fleet_cpu_*: the process's CPU time for it, which "
        "waiting for a busy CPU does not inflate); tuple_*: select on a tuple of HostView "
        "(includes Fleet.of); oracle_*: the per-host implementation it replaced, on the same "
        "decisions (plans checked identical)."
    )
    return Result(
        name=NAME,
        title="Scheduler: decision-only latency (vectorised select vs the per-host oracle)",
        description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        columns=COLUMNS,
        rows=rows,
        notes=notes,
    )
