"""Consolidation for energy, the pure planner (``planner/powerdown.py``): Hypothesis
properties over random data centres, and a few worked examples.

Properties: replaying the moves in order never overfills a host (usable, nor ``max_fill``
on receivers) and never breaks a hard anti-affinity cap at any step; affinity groups of
several members never move; only RUNNING/STOPPED instances on ACTIVE hosts move, and only
to ACTIVE hosts; hosts with a busy instance are not emptied; every freed host ends empty;
the reserve of spares holds; the plan frees at least as many hosts as an independent
first-fit baseline; the result does not depend on input order.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.consolidation import (
    ConsolidationParams,
    ConsolidationPlan,
    HostAction,
    PlanHost,
    PlanInstance,
    PowerModel,
)
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.planner.powerdown import baseline, plan

R = Resources
MOVABLE = {"RUNNING", "STOPPED"}


# -- generators ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    id: str
    policy: GroupPolicy
    max_per_host: int | None


@dataclass(frozen=True)
class _Raw:
    k: int
    host: str
    size: tuple[int, int, int]
    state: str
    group: _Group | None
    wants_ssd: bool


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[PlanHost], list[PlanInstance], ConsolidationParams]:
    n_hosts = draw(st.integers(1, 8))
    caps = []
    for i in range(n_hosts):
        caps.append(
            (
                f"h{i:02d}",
                draw(st.sampled_from(["active"] * 6 + ["maintenance", "draining"])),
                (
                    draw(st.integers(4, 32)),
                    1024 * draw(st.integers(4, 32)),
                    draw(st.integers(50, 400)),
                ),
                frozenset(draw(st.sets(st.sampled_from(["ssd", "gpu"]), max_size=1))),
                draw(
                    st.none()
                    | st.tuples(st.integers(50, 300), st.integers(0, 400)).map(
                        lambda t: PowerModel(idle_watts=t[0], peak_watts=t[0] + t[1])
                    )
                ),
            )
        )
    n_groups = draw(st.integers(0, 3))
    groups = [
        _Group(
            f"g{g}", draw(st.sampled_from(list(GroupPolicy))), draw(st.sampled_from([None, 1, 2]))
        )
        for g in range(n_groups)
    ]
    used = {name: [0, 0, 0] for name, *_ in caps}
    per_group: dict[str, Counter[str]] = {g.id: Counter() for g in groups}
    affinity_host: dict[str, str] = {}
    raw: list[_Raw] = []
    for k in range(draw(st.integers(0, 24))):
        host, _state, cap, _traits, _power = caps[draw(st.integers(0, n_hosts - 1))]
        size = (
            draw(st.sampled_from([1, 1, 2, 4])),
            1024 * draw(st.sampled_from([1, 1, 2, 4])),
            draw(st.sampled_from([10, 20, 40])),
        )
        if any(u + s > c for u, s, c in zip(used[host], size, cap, strict=True)):
            continue
        group: _Group | None = None
        join: bool = draw(st.booleans())
        if groups and join:
            group = groups[draw(st.integers(0, n_groups - 1))]
            hard_cap = group.max_per_host or 1
            full = (
                group.policy is GroupPolicy.ANTI_AFFINITY and per_group[group.id][host] >= hard_cap
            )
            elsewhere = (
                group.policy is GroupPolicy.AFFINITY
                and affinity_host.setdefault(group.id, host) != host
            )
            if full or elsewhere:
                group = None
            if group is not None:
                per_group[group.id][host] += 1
        for d in range(3):
            used[host][d] += size[d]
        state = draw(st.sampled_from(["RUNNING"] * 6 + ["STOPPED", "MIGRATING", "BUILDING"]))
        wants_ssd = draw(st.booleans()) and draw(st.booleans())
        raw.append(_Raw(k, host, size, state, group, wants_ssd))
    hosts = [
        PlanHost(
            id=f"id-{name}",
            name=name,
            state=state,
            usable=R(vcpus=cap[0], ram_mib=cap[1], disk_gib=cap[2]),
            used=R(vcpus=used[name][0], ram_mib=used[name][1], disk_gib=used[name][2]),
            traits=(traits | {"ssd"}) if draw(st.booleans()) else traits,
            power=power,
        )
        for name, state, cap, traits, power in caps
    ]
    members = Counter(r.group.id for r in raw if r.group)
    instances = []
    for r in raw:
        g = r.group
        # Required traits only where the current host has them (as the scheduler did).
        here = next(h for h in hosts if h.name == r.host)
        required = frozenset({"ssd"}) if r.wants_ssd and "ssd" in here.traits else frozenset()
        instances.append(
            PlanInstance(
                id=f"i{r.k:03d}",
                name=f"vm-{r.k:03d}",
                host_id=f"id-{r.host}",
                state=r.state,
                size=R(vcpus=r.size[0], ram_mib=r.size[1], disk_gib=r.size[2]),
                group_id=g.id if g else None,
                group_name=g.id if g else "",
                group_policy=g.policy if g else None,
                max_per_host=g.max_per_host if g else None,
                group_members=members[g.id] if g else 1,
                required_traits=required,
            )
        )
    params = ConsolidationParams(
        reserve=draw(st.integers(0, 2)),
        max_fill=draw(st.sampled_from([1.0, 1.0, 0.85, 0.6])),
        max_parallel=2,
    )
    return hosts, instances, params


# -- an independent first-fit baseline -------------------------------------------------------


def _share(used: tuple[int, ...] | list[int], cap: Resources) -> float:
    caps = (cap.vcpus, cap.ram_mib, cap.disk_gib)
    return max((u / c for u, c in zip(used, caps, strict=True) if c), default=0.0)


def naive_freed(
    hosts: list[PlanHost], instances: list[PlanInstance], params: ConsolidationParams
) -> int:
    """Givers by ascending load, each instance into the first host by name that fits."""
    by_name = sorted(hosts, key=lambda h: h.name)
    on = {
        h.id: sorted((i for i in instances if i.host_id == h.id), key=lambda i: i.name)
        for h in by_name
    }
    used = {h.id: [h.used.vcpus, h.used.ram_mib, h.used.disk_gib] for h in by_name}
    lim = {
        h.id: [
            min(c, int(c * params.max_fill + 1e-9))
            for c in (h.usable.vcpus, h.usable.ram_mib, h.usable.disk_gib)
        ]
        for h in by_name
    }
    groups: dict[str, Counter[str]] = {}
    for i in instances:
        if i.group_id:
            groups.setdefault(i.group_id, Counter())[i.host_id] += 1

    def pinned(h: PlanHost) -> bool:
        return h.state != "active" or any(
            i.state not in MOVABLE
            or (i.group_policy is GroupPolicy.AFFINITY and i.group_members > 1)
            for i in on[h.id]
        )

    active = [h for h in by_name if h.state == "active"]
    empty = [h.id for h in active if not pinned(h) and not on[h.id]]
    givers = sorted(
        (h for h in active if not pinned(h) and on[h.id]),
        key=lambda h: (_share(used[h.id], h.usable), h.name),
    )
    receivers = [h for h in active if h.id not in empty]
    emptied: set[str] = set()
    received: set[str] = set()
    for g in givers:
        if g.id in received:
            continue
        moved: list[tuple[PlanInstance, str]] = []
        ok = True
        for inst in sorted(
            on[g.id],
            key=lambda i: (
                -_share((i.size.vcpus, i.size.ram_mib, i.size.disk_gib), g.usable),
                i.name,
            ),
        ):
            size = (inst.size.vcpus, inst.size.ram_mib, inst.size.disk_gib)
            target = None
            for t in receivers:
                if t.id == g.id or t.id in emptied:
                    continue
                if inst.required_traits - t.traits or inst.forbidden_traits & t.traits:
                    continue
                if any(used[t.id][d] + size[d] > lim[t.id][d] for d in range(3)):
                    continue
                if (
                    inst.group_id
                    and inst.group_policy is GroupPolicy.ANTI_AFFINITY
                    and groups[inst.group_id][t.id] + 1 > (inst.max_per_host or 1)
                ):
                    continue
                target = t.id
                break
            if target is None:
                ok = False
                break
            for d in range(3):
                used[target][d] += size[d]
                used[g.id][d] -= size[d]
            if inst.group_id:
                groups[inst.group_id][target] += 1
                groups[inst.group_id][g.id] -= 1
            moved.append((inst, target))
        if not ok:
            for inst, target in reversed(moved):
                size = (inst.size.vcpus, inst.size.ram_mib, inst.size.disk_gib)
                for d in range(3):
                    used[target][d] -= size[d]
                    used[g.id][d] += size[d]
                if inst.group_id:
                    groups[inst.group_id][target] -= 1
                    groups[inst.group_id][g.id] += 1
            continue
        emptied.add(g.id)
        received.update(t for _, t in moved)
    return max(0, len(empty) + len(emptied) - params.reserve)


# -- replaying a plan ------------------------------------------------------------------------


def check_plan(
    hosts: list[PlanHost],
    instances: list[PlanInstance],
    params: ConsolidationParams,
    p: ConsolidationPlan,
) -> None:
    by_id = {h.id: h for h in hosts}
    inst = {i.id: i for i in instances}
    used = {h.id: [h.used.vcpus, h.used.ram_mib, h.used.disk_gib] for h in hosts}
    where = {i.id: i.host_id for i in instances}
    groups: dict[str, Counter[str]] = {}
    for i in instances:
        if i.group_id:
            groups.setdefault(i.group_id, Counter())[i.host_id] += 1
    sources = {m.source_id for m in p.moves}
    targets = {m.target_id for m in p.moves}
    assert not sources & targets, "a host both gives and takes"
    moved = [m.instance_id for m in p.moves]
    assert len(moved) == len(set(moved)), "an instance moves twice"
    for m in p.moves:
        i = inst[m.instance_id]
        assert where[i.id] == m.source_id
        assert i.state in MOVABLE
        assert by_id[m.source_id].state == "active"
        assert by_id[m.target_id].state == "active"
        assert not (i.group_policy is GroupPolicy.AFFINITY and i.group_members > 1)
        assert not i.required_traits - by_id[m.target_id].traits
        size = (i.size.vcpus, i.size.ram_mib, i.size.disk_gib)
        t = by_id[m.target_id]
        caps = (t.usable.vcpus, t.usable.ram_mib, t.usable.disk_gib)
        for d in range(3):
            used[m.target_id][d] += size[d]
            used[m.source_id][d] -= size[d]
            # Never over capacity (nor max_fill on a receiver) at any step.
            assert used[m.target_id][d] <= caps[d]
            assert used[m.target_id][d] <= caps[d] * params.max_fill + 1e-6
        where[i.id] = m.target_id
        if i.group_id:
            groups[i.group_id][m.target_id] += 1
            groups[i.group_id][m.source_id] -= 1
            if i.group_policy is GroupPolicy.ANTI_AFFINITY:
                assert groups[i.group_id][m.target_id] <= (i.max_per_host or 1)
    # Givers are emptied completely; freed hosts end empty; busy hosts never give.
    for hid in sources:
        assert not [i for i, h in where.items() if h == hid]
        assert used[hid] == [0, 0, 0]
    names = {h.name: h for h in hosts}
    for name in p.freed:
        h = names[name]
        assert h.state == "active"
        assert not [i for i, hid in where.items() if hid == h.id]
    for h in hosts:
        if any(i.state not in MOVABLE for i in instances if i.host_id == h.id):
            assert h.id not in sources
            assert h.name not in p.freed
    # The reserve: spares are empty, active, and as many as asked whenever a host is freed.
    for name in p.spares:
        h = names[name]
        assert h.state == "active"
        assert not [i for i, hid in where.items() if hid == h.id]
    if p.freed:
        assert len(p.spares) == params.reserve
    else:
        assert p.moves == []
    assert set(p.freed).isdisjoint(p.spares)
    actions = {hp.name: hp.action for hp in p.hosts}
    assert {n for n, a in actions.items() if a is HostAction.POWER_OFF} == set(p.freed)
    assert all(hp.watts_after == 0 for hp in p.hosts if hp.action is HostAction.POWER_OFF)
    assert abs(p.watts_before - p.watts_after - p.watts_saved) < 0.2
    assert set(p.not_freed) == {h.name for h in hosts} - set(p.freed)


@settings(max_examples=100)
@given(fleets())
def test_plan_never_overcommits_or_breaks_groups_and_beats_the_baseline(
    fleet: tuple[list[PlanHost], list[PlanInstance], ConsolidationParams],
) -> None:
    hosts, instances, params = fleet
    p = plan("tpe-1", hosts, instances, params)
    check_plan(hosts, instances, params, p)
    base = naive_freed(hosts, instances, params)
    assert p.baseline_freed == base
    assert len(p.freed) >= base
    check_plan(hosts, instances, params, baseline("tpe-1", hosts, instances, params))


@settings(max_examples=60)
@given(fleets(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_whatever_the_input_order(
    fleet: tuple[list[PlanHost], list[PlanInstance], ConsolidationParams], rnd: random.Random
) -> None:
    hosts, instances, params = fleet
    first = plan("tpe-1", hosts, instances, params)
    rnd.shuffle(hosts)
    rnd.shuffle(instances)
    again = plan("tpe-1", hosts, instances, params)
    assert again.model_dump() == first.model_dump()


# -- worked examples -------------------------------------------------------------------------


def _host(name: str, vcpus: int = 16, state: str = "active", **kw: Any) -> PlanHost:
    return PlanHost(
        id=name,
        name=name,
        state=state,
        usable=R(vcpus=vcpus, ram_mib=32768, disk_gib=500),
        used=R(),
        **kw,
    )


def _fill(hosts: list[PlanHost], instances: list[PlanInstance]) -> list[PlanHost]:
    out = []
    for h in hosts:
        mine = [i for i in instances if i.host_id == h.id]
        total = R()
        for i in mine:
            total = total + i.size
        out.append(h.model_copy(update={"used": total}))
    return out


def _vm(name: str, host: str, vcpus: int = 4, state: str = "RUNNING", **kw: Any) -> PlanInstance:
    return PlanInstance(
        id=name,
        name=name,
        host_id=host,
        state=state,
        size=R(vcpus=vcpus, ram_mib=4096, disk_gib=40),
        **kw,
    )


def test_light_hosts_are_emptied_onto_others_with_power_saved() -> None:
    vms = [_vm("a", "h1"), _vm("b", "h2"), _vm("c", "h3", vcpus=2), _vm("d", "h4")]
    hosts = _fill(
        [_host(f"h{i}", power=PowerModel(idle_watts=100, peak_watts=300)) for i in range(1, 5)], vms
    )
    p = plan("tpe-1", hosts, vms, ConsolidationParams(reserve=1))
    assert len(p.freed) == 2
    assert len(p.spares) == 1
    assert p.watts_saved > 150
    assert p.kwh_month_saved == round(p.watts_saved * 730 / 1000, 1)
    assert p.power_estimated_hosts == []
    assert p.not_freed[p.spares[0]].startswith("kept on as a spare")


def test_reasons_name_pins_and_rules() -> None:
    group: dict[str, Any] = {
        "group_id": "g",
        "group_name": "db",
        "group_policy": GroupPolicy.ANTI_AFFINITY,
    }
    together: dict[str, Any] = {
        "group_id": "w",
        "group_name": "web",
        "group_policy": GroupPolicy.AFFINITY,
        "group_members": 2,
    }
    vms = [
        _vm("busy", "h1", state="MIGRATING"),
        _vm("db-1", "h2", **group),
        _vm("db-2", "h3", **group),
        _vm("web-1", "h4", **together),
        _vm("web-2", "h4", **together),
    ]
    hosts = _fill(
        [_host("h1"), _host("h2"), _host("h3"), _host("h4"), _host("h5", state="maintenance")], vms
    )
    p = plan("tpe-1", hosts, vms, ConsolidationParams(reserve=0))
    assert "MIGRATING" in p.not_freed["h1"]
    assert "affinity" in p.not_freed["h4"]
    assert "maintenance" in p.not_freed["h5"]
    # db-1 and db-2 may not share a host: they go to h1 and h4, one each.
    assert sorted(p.freed) == ["h2", "h3"]
    assert sorted(m.target for m in p.moves) == ["h1", "h4"]
    assert p.power_estimated_hosts  # no power models: the default is stated
    check_plan(hosts, vms, ConsolidationParams(reserve=0), p)


def test_max_fill_and_reserve_limit_the_plan() -> None:
    vms = [_vm("a", "h1", vcpus=8), _vm("b", "h2", vcpus=8)]
    hosts = _fill([_host("h1"), _host("h2")], vms)
    assert len(plan("tpe-1", hosts, vms, ConsolidationParams(reserve=0)).freed) == 1
    # 16 vCPU on one 16-vCPU host is 100%: above --max-fill 0.85.
    tight = plan("tpe-1", hosts, vms, ConsolidationParams(reserve=0, max_fill=0.85))
    assert tight.freed == []
    assert tight.moves == []
    assert "fits on no other host" in tight.not_freed["h1"]
    # With a reserve of 1 the emptied host would only be a spare: nothing moves.
    spare = plan("tpe-1", hosts, vms, ConsolidationParams(reserve=1))
    assert spare.freed == []
    assert spare.moves == []
