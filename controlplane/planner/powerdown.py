"""Consolidation for energy within one data centre (pure): which lightly loaded hosts to
empty by live migration and power down, and the moves that empty them.

(:mod:`controlplane.planner.consolidate` is the other consolidation: machine rooms into
data centres, before any host exists. This one works on the enrolled fleet.)

Input: the data centre's hosts (usable capacity under the ratios, what is claimed, state,
traits, power model) and their instances (size, state, server group, required and
forbidden traits), plus :class:`~controlplane.domain.consolidation.ConsolidationParams`.

Rules every plan keeps, at every step of its execution:

* only ACTIVE hosts give or take instances; a host with an instance that is not RUNNING
  or STOPPED (e.g. MIGRATING, BUILDING), with claims not explained by its instances
  (moves in flight towards it), or with a member of a hard affinity group of several
  members is *pinned* (not emptied), with that reason;
* a receiving host never exceeds its usable capacity nor ``max_fill`` of it in any
  dimension; a hard anti-affinity group never exceeds ``max_per_host`` members on a host;
  an instance only goes to a host with its required traits and none of its forbidden ones;
* hosts that give never take, and hosts that take never give: so capacity and group
  counts only grow on receivers and only shrink on givers, and *any prefix* of the moves
  (any execution order, any interruption) is as valid as the whole plan;
* a host is emptied completely or not at all (its moves are dropped otherwise);
* ``reserve`` empty ACTIVE hosts stay on as spares: already-empty hosts first (by name),
  then the emptied hosts with the fewest moves. A plan that powers nothing down moves
  nothing.

Search: the **baseline** is first fit (givers by ascending load, the largest share of
usable any dimension has, then name; receivers by name). The planner also runs best fit
and fullest-first receivers under a few giver orders and keeps the plan that powers down
the most hosts, then draws the least power, then moves the fewest instances, then comes
first in :data:`STRATEGIES`; the baseline is one of the candidates, so the result frees at
least as many hosts as the baseline on every input. Above :data:`LARGE_WORK`
(instance x receiver) pairs only the first three strategies run (1,000 hosts with 5,000
instances plan in seconds). Everything is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controlplane.domain.consolidation import (
    DEFAULT_POWER,
    HOURS_PER_MONTH,
    ConsolidationParams,
    ConsolidationPlan,
    HostAction,
    HostPlan,
    Move,
    PlanHost,
    PlanInstance,
)
from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy

Vec = tuple[int, int, int]
MOVABLE: frozenset[str] = frozenset({InstanceState.RUNNING.value, InstanceState.STOPPED.value})
#: (name, giver order, receiver rule); the first is the baseline.
STRATEGIES: tuple[tuple[str, str, str], ...] = (
    ("first-fit", "load", "name"),
    ("best-fit", "load", "best"),
    ("fullest-first", "load", "fullest"),
    ("best-fit/fewest-instances", "count", "best"),
    ("fullest-first/fewest-instances", "count", "fullest"),
    ("best-fit/smallest-first", "size", "best"),
)
_TAKES = "takes instances from emptied hosts"
#: Above this many (instance x receiver) pairs only the first three strategies run.
LARGE_WORK = 1_000_000
#: Rejection examples kept per instance that fits nowhere.
_EXAMPLES = 3


def _vec(r: Resources) -> Vec:
    return (r.vcpus, r.ram_mib, r.disk_gib)


def _res(v: Sequence[int]) -> Resources:
    return Resources(vcpus=v[0], ram_mib=v[1], disk_gib=v[2])


def _inv(x: int) -> float:
    return 1.0 / x if x > 0 else 0.0


def _share(used: Sequence[int], usable: Sequence[int]) -> float:
    return max((u / c for u, c in zip(used, usable, strict=True) if c > 0), default=0.0)


def _utilisation(host: PlanHost, used: Sequence[int]) -> float:
    cap = host.usable.vcpus
    return min(1.0, used[0] / cap) if cap > 0 else 0.0


def _watts(host: PlanHost, used: Sequence[int]) -> float:
    return (host.power or DEFAULT_POWER).watts(_utilisation(host, used))


def _fmt(v: Sequence[int]) -> str:
    return f"{v[0]} vCPU, {v[1] / 1024:g} GiB RAM, {v[2]} GiB disk"


@dataclass
class _Fleet:
    """What the strategies share: hosts, instances per host, pins and limits."""

    hosts: dict[str, PlanHost]
    on_host: dict[str, list[PlanInstance]]
    pinned: dict[str, str]
    #: Receiving limit per host: min(usable, floor(usable * max_fill)) per dimension.
    limit: dict[str, Vec]
    initially_empty: list[str]
    givers: list[str]
    receivers: list[str]
    groups: dict[str, Counter[str]]
    traits: dict[str, frozenset[str]]
    usable: dict[str, Vec]
    #: 1 / receiving limit per dimension (0 where the limit is 0): best-fit's slack.
    weights: dict[str, tuple[float, float, float]]


def _fleet(
    hosts: Sequence[PlanHost], instances: Sequence[PlanInstance], params: ConsolidationParams
) -> _Fleet:
    by_id = {h.id: h for h in sorted(hosts, key=lambda h: (h.name, h.id))}
    on_host: dict[str, list[PlanInstance]] = {h: [] for h in by_id}
    groups: dict[str, Counter[str]] = {}
    for inst in sorted(instances, key=lambda i: (i.name, i.id)):
        if inst.host_id in on_host:
            on_host[inst.host_id].append(inst)
        if inst.group_id is not None:
            groups.setdefault(inst.group_id, Counter())[inst.host_id] += 1
    pinned: dict[str, str] = {}
    for hid, host in by_id.items():
        if host.state != HostState.ACTIVE.value:
            pinned[hid] = f"host is {host.state}: only active hosts are consolidated"
            continue
        members = on_host[hid]
        busy = [i for i in members if i.state not in MOVABLE]
        if busy:
            pinned[hid] = (
                f"instance {busy[0].name} is {busy[0].state}: a host with instances that are "
                "not RUNNING or STOPPED is not emptied"
            )
            continue
        held = [sum(c) for c in zip(*(_vec(i.size) for i in members), strict=True)] or [0, 0, 0]
        extra = [u - h for u, h in zip(_vec(host.used), held, strict=True)]
        if any(x > 0 for x in extra):
            pinned[hid] = (
                f"holds claims beyond its instances ({_fmt([max(0, x) for x in extra])}): "
                "moves in flight towards it"
            )
            continue
        together = [
            i for i in members if i.group_policy is GroupPolicy.AFFINITY and i.group_members > 1
        ]
        if together:
            g = together[0]
            pinned[hid] = (
                f"server group {g.group_name or g.group_id} (affinity, {g.group_members} "
                "members) must stay together and live migration moves one instance at a time"
            )
    limit: dict[str, Vec] = {}
    for hid, host in by_id.items():
        usable = _vec(host.usable)
        lim = [min(c, int(c * params.max_fill + 1e-9)) for c in usable]
        limit[hid] = (lim[0], lim[1], lim[2])
    active = [h for h in by_id if by_id[h].state == HostState.ACTIVE.value]
    empty = [
        h for h in active if h not in pinned and not on_host[h] and not any(_vec(by_id[h].used))
    ]
    givers = [h for h in active if h not in pinned and on_host[h]]
    receivers = [h for h in active if h not in empty]
    traits = {h: by_id[h].traits for h in by_id}
    usable_of = {h: _vec(by_id[h].usable) for h in by_id}
    weights = {h: (_inv(lim[0]), _inv(lim[1]), _inv(lim[2])) for h, lim in limit.items()}
    return _Fleet(
        by_id, on_host, pinned, limit, empty, givers, receivers, groups, traits, usable_of, weights
    )


@dataclass
class _Run:
    """One strategy's result."""

    name: str
    emptied: list[str] = field(default_factory=list)
    moves: dict[str, list[tuple[PlanInstance, str]]] = field(default_factory=dict)
    used: dict[str, list[int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    received: set[str] = field(default_factory=set)


def _fits(
    fleet: _Fleet,
    used: dict[str, list[int]],
    groups: dict[str, Counter[str]],
    inst: PlanInstance,
    target: str,
) -> str | None:
    """Why ``inst`` cannot go to ``target`` now (None: it can)."""
    host = fleet.hosts[target]
    if inst.required_traits - host.traits:
        return f"{host.name}: lacks trait {sorted(inst.required_traits - host.traits)[0]}"
    if inst.forbidden_traits & host.traits:
        return f"{host.name}: has forbidden trait {sorted(inst.forbidden_traits & host.traits)[0]}"
    size = _vec(inst.size)
    have, lim = used[target], fleet.limit[target]
    for d, name in enumerate(("vCPU", "MiB RAM", "GiB disk")):
        if have[d] + size[d] > lim[d]:
            return f"{host.name}: {name} {have[d]} + {size[d]} > {lim[d]}"
    if inst.group_id is not None and inst.group_policy is GroupPolicy.ANTI_AFFINITY:
        cap = inst.max_per_host or 1
        if groups[inst.group_id][target] + 1 > cap:
            return (
                f"{host.name}: anti-affinity group {inst.group_name or inst.group_id} "
                f"at most {cap} per host"
            )
    return None


def _giver_order(fleet: _Fleet, how: str) -> list[str]:
    def load(h: str) -> float:
        return _share(_vec(fleet.hosts[h].used), _vec(fleet.hosts[h].usable))

    def name(h: str) -> str:
        return fleet.hosts[h].name

    keys: dict[str, Callable[[str], tuple[float, float, str]]] = {
        "load": lambda h: (load(h), 0.0, name(h)),
        "count": lambda h: (float(len(fleet.on_host[h])), load(h), name(h)),
        "size": lambda h: (float(sum(sum(_vec(i.size)) for i in fleet.on_host[h])), 0.0, name(h)),
    }
    return sorted(fleet.givers, key=keys[how])


def _run(fleet: _Fleet, name: str, giver_how: str, rule: str) -> _Run:
    run = _Run(name)
    run.used = {h: list(_vec(fleet.hosts[h].used)) for h in fleet.hosts}
    groups = {g: Counter(c) for g, c in fleet.groups.items()}
    emptied: set[str] = set()

    def candidates(source: str) -> list[str]:
        pool = [h for h in fleet.receivers if h != source and h not in emptied]
        if rule == "fullest":
            pool.sort(key=lambda h: (-_share(run.used[h], fleet.usable[h]), fleet.hosts[h].name))
        return pool

    for source in _giver_order(fleet, giver_how):
        if source in run.received:
            run.reasons[source] = _TAKES
            continue
        members = sorted(
            fleet.on_host[source],
            key=lambda i: (-_share(_vec(i.size), _vec(fleet.hosts[source].usable)), i.name, i.id),
        )
        pool = candidates(source)
        done: list[tuple[PlanInstance, str]] = []
        failure = ""
        for inst in members:
            chosen, why = _choose(fleet, run.used, groups, inst, pool, rule)
            if chosen is None:
                failure = (
                    f"instance {inst.name} ({_fmt(_vec(inst.size))}) fits on no other host"
                    + (f": {'; '.join(why)}" if why else ": no active host to receive it")
                )
                break
            _apply(run.used, groups, inst, source, chosen, +1)
            done.append((inst, chosen))
        if failure:
            for inst, target in reversed(done):
                _apply(run.used, groups, inst, source, target, -1)
            run.reasons[source] = failure
            continue
        emptied.add(source)
        run.emptied.append(source)
        run.moves[source] = done
        run.received.update(t for _, t in done)
    return run


def _choose(
    fleet: _Fleet,
    used: dict[str, list[int]],
    groups: dict[str, Counter[str]],
    inst: PlanInstance,
    pool: Sequence[str],
    rule: str,
) -> tuple[str | None, list[str]]:
    """The receiver for ``inst`` (first in ``pool`` that fits, or the tightest fit for
    ``best``), and up to a few rejection reasons. The checks are inlined (hot loop);
    :func:`_fits` words a rejection."""
    why: list[str] = []
    best: str | None = None
    best_slack = 0.0
    a, b, c = _vec(inst.size)
    required, forbidden = inst.required_traits, inst.forbidden_traits
    anti = inst.group_id if inst.group_policy is GroupPolicy.ANTI_AFFINITY else None
    members = groups[anti] if anti is not None else None
    cap = inst.max_per_host or 1
    limit, traits, weights = fleet.limit, fleet.traits, fleet.weights
    for target in pool:
        u, lim = used[target], limit[target]
        ok = u[0] + a <= lim[0] and u[1] + b <= lim[1] and u[2] + c <= lim[2]
        if ok and (required or forbidden):
            have = traits[target]
            ok = required <= have and not forbidden & have
        if ok and members is not None:
            ok = members[target] < cap
        if not ok:
            if len(why) < _EXAMPLES:
                why.append(_fits(fleet, used, groups, inst, target) or f"{target}: no room")
            continue
        if rule != "best":
            return target, why
        w = weights[target]
        slack = (lim[0] - u[0] - a) * w[0] + (lim[1] - u[1] - b) * w[1] + (lim[2] - u[2] - c) * w[2]
        if best is None or slack < best_slack:
            best, best_slack = target, slack
    return best, why


def _apply(
    used: dict[str, list[int]],
    groups: dict[str, Counter[str]],
    inst: PlanInstance,
    source: str,
    target: str,
    sign: int,
) -> None:
    for d, s in enumerate(_vec(inst.size)):
        used[target][d] += sign * s
        used[source][d] -= sign * s
    if inst.group_id is not None:
        groups[inst.group_id][target] += sign
        groups[inst.group_id][source] -= sign


def _settle(fleet: _Fleet, run: _Run, reserve: int) -> tuple[list[str], list[str]]:
    """(spares, freed): keep ``reserve`` empty hosts on, already-empty ones first, then
    the emptied hosts with the fewest moves (their moves make the spare). When nothing
    would be freed, every move is dropped."""
    by_moves = sorted(run.emptied, key=lambda h: (len(run.moves[h]), fleet.hosts[h].name))
    empty = fleet.initially_empty + by_moves
    spares, freed = empty[:reserve], empty[reserve:]
    if freed:
        return spares, freed
    for source in run.emptied:
        for inst, target in run.moves[source]:
            for d, s in enumerate(_vec(inst.size)):
                run.used[target][d] -= s
                run.used[source][d] += s
        run.reasons[source] = (
            f"could be emptied, but only as a spare (reserve {reserve}): nothing would be "
            "powered down, so nothing moves"
        )
    for host, why in run.reasons.items():
        if why == _TAKES:
            run.reasons[host] = "left as it is: nothing would be powered down"
    run.moves.clear()
    run.emptied = []
    run.received.clear()
    return fleet.initially_empty[:reserve], []


def _power(fleet: _Fleet, run: _Run, freed: set[str]) -> float:
    return sum(
        _watts(host, run.used[hid])
        for hid, host in fleet.hosts.items()
        if host.state == HostState.ACTIVE.value and hid not in freed
    )


def plan(
    datacentre: str,
    hosts: Sequence[PlanHost],
    instances: Sequence[PlanInstance],
    params: ConsolidationParams | None = None,
    *,
    strategies: Sequence[tuple[str, str, str]] = STRATEGIES,
) -> ConsolidationPlan:
    """The consolidation plan for one data centre's ``hosts`` and ``instances``."""
    params = params or ConsolidationParams()
    fleet = _fleet(hosts, instances, params)
    if len(strategies) > 3 and len(instances) * len(fleet.receivers) > LARGE_WORK:
        strategies = strategies[:3]
    best: tuple[tuple[int, float, int, int], _Run, list[str], list[str]] | None = None
    baseline_freed = 0
    for index, (name, giver_how, rule) in enumerate(strategies):
        run = _run(fleet, name, giver_how, rule)
        spares, freed = _settle(fleet, run, params.reserve)
        if index == 0:
            baseline_freed = len(freed)
        moves = sum(len(m) for m in run.moves.values())
        key = (-len(freed), round(_power(fleet, run, set(freed)), 6), moves, index)
        if best is None or key < best[0]:
            best = (key, run, spares, freed)
    assert best is not None
    _, run, spares, freed = best
    return _result(datacentre, params, fleet, run, spares, freed, baseline_freed)


def baseline(
    datacentre: str,
    hosts: Sequence[PlanHost],
    instances: Sequence[PlanInstance],
    params: ConsolidationParams | None = None,
) -> ConsolidationPlan:
    """The first-fit baseline alone (for comparison and tests)."""
    return plan(datacentre, hosts, instances, params, strategies=STRATEGIES[:1])


def _result(
    datacentre: str,
    params: ConsolidationParams,
    fleet: _Fleet,
    run: _Run,
    spares: list[str],
    freed: list[str],
    baseline_freed: int,
) -> ConsolidationPlan:
    freed_set, spare_set = set(freed), set(spares)
    moves: list[Move] = []
    givers = [h for h in run.emptied if h in freed_set] + [
        h for h in run.emptied if h not in freed_set
    ]
    for source in givers:
        for inst, target in run.moves.get(source, []):
            moves.append(
                Move(
                    seq=len(moves) + 1,
                    instance_id=inst.id,
                    instance_name=inst.name,
                    source=fleet.hosts[source].name,
                    source_id=source,
                    target=fleet.hosts[target].name,
                    target_id=target,
                    size=inst.size,
                )
            )
    arriving = Counter(m.target_id for m in moves)
    leaving = Counter(m.source_id for m in moves)
    host_plans: list[HostPlan] = []
    not_freed: dict[str, str] = {}
    before_total = after_total = 0.0
    for hid, host in fleet.hosts.items():
        active = host.state == HostState.ACTIVE.value
        before = _watts(host, _vec(host.used)) if active else 0.0
        after = 0.0 if (hid in freed_set or not active) else _watts(host, run.used[hid])
        before_total += before
        after_total += after
        if hid in freed_set:
            action, reason = HostAction.POWER_OFF, ""
        elif hid in spare_set:
            action = HostAction.SPARE
            reason = f"kept on as a spare (reserve {params.reserve})"
        elif not active:
            action, reason = HostAction.EXCLUDED, fleet.pinned[hid]
        elif arriving[hid]:
            action = HostAction.RECEIVE
            reason = _TAKES + (f"; also, {fleet.pinned[hid]}" if hid in fleet.pinned else "")
        else:
            action = HostAction.KEEP
            reason = fleet.pinned.get(hid) or run.reasons.get(hid) or "not needed"
        if action is not HostAction.POWER_OFF:
            not_freed[host.name] = reason
        count = len(fleet.on_host[hid])
        host_plans.append(
            HostPlan(
                id=hid,
                name=host.name,
                state=host.state,
                action=action,
                instances_before=count,
                instances_after=count - leaving[hid] + arriving[hid],
                usable=host.usable,
                used_before=host.used,
                used_after=_res(run.used[hid]),
                watts_before=round(before, 1),
                watts_after=round(after, 1),
                power_estimated=host.power is None,
                reason=reason,
            )
        )
    # Rounded first, so that the printed figures add up.
    saved = round(round(before_total, 1) - round(after_total, 1), 1)
    return ConsolidationPlan(
        datacentre=datacentre,
        params=params,
        moves=moves,
        hosts=host_plans,
        freed=[fleet.hosts[h].name for h in freed],
        spares=[fleet.hosts[h].name for h in spares],
        not_freed=not_freed,
        watts_before=round(before_total, 1),
        watts_after=round(after_total, 1),
        watts_saved=round(saved, 1),
        kwh_month_saved=round(saved * HOURS_PER_MONTH / 1000, 1),
        power_estimated_hosts=[
            h.name
            for h in fleet.hosts.values()
            if h.power is None and h.state == HostState.ACTIVE.value
        ],
        strategy=run.name,
        baseline_freed=baseline_freed,
    )
