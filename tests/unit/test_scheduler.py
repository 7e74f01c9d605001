"""The scheduler: checks, scores per policy, groups, count, explanations, determinism."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.host import HostState
from controlplane.domain.resources import DIMENSIONS, Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler import GroupView, HostView, PlacementRequest, Plan, select
from controlplane.scheduler.checks import CHECKS, capacity, datacentre, host_state, traits
from controlplane.scheduler.context import Context
from controlplane.scheduler.groups import violation
from controlplane.scheduler.scores import rank, rank_all

PACK, SPREAD = PlacementPolicy.PACK, PlacementPolicy.SPREAD


def host(
    name: str,
    *,
    usable: tuple[int, int, int] = (16, 16384, 100),
    used: tuple[int, int, int] = (0, 0, 0),
    dc: str = "tpe-1",
    state: HostState = HostState.ACTIVE,
    dc_active: bool = True,
    trait_set: frozenset[str] = frozenset(),
    generation: int = 0,
) -> HostView:
    return HostView(
        f"id-{name}", name, dc, state.value, *usable, *used, trait_set, dc_active, generation
    )


def want(
    vcpus: int = 1,
    ram_mib: int = 1024,
    disk_gib: int = 10,
    *,
    dc: str | None = None,
    required: frozenset[str] = frozenset(),
    forbidden: frozenset[str] = frozenset(),
    count: int = 1,
    policy: PlacementPolicy = SPREAD,
    group: GroupView | None = None,
) -> PlacementRequest:
    return PlacementRequest(
        resources=Resources(vcpus=vcpus, ram_mib=ram_mib, disk_gib=disk_gib),
        datacentre=dc,
        required_traits=required,
        forbidden_traits=forbidden,
        count=count,
        policy=policy,
        group=group,
    )


def ctx(request: PlacementRequest | None = None) -> Context:
    return Context.of(request or want())


def hosts_of(plan: Plan) -> list[str]:
    return [p.host_name for p in plan.placements]


# -- individual checks --------------------------------------------------------------------


@pytest.mark.parametrize("state", [HostState.MAINTENANCE, HostState.DISABLED, HostState.DOWN])
def test_host_state_rejects_inactive_hosts(state: HostState) -> None:
    assert host_state(host("h1", state=state), ctx()) == f"host is {state.value}"


def test_host_state_rejects_hosts_in_inactive_data_centres() -> None:
    assert host_state(host("h1", dc_active=False), ctx()) == "data centre tpe-1 is not active"
    assert host_state(host("h1"), ctx()) is None


def test_datacentre_and_traits_checks() -> None:
    assert datacentre(host("h1"), ctx(want(dc="txg-1"))) == "in data centre tpe-1, not txg-1"
    assert datacentre(host("h1"), ctx(want(dc="tpe-1"))) is None
    ssd = host("h1", trait_set=frozenset({"ssd", "fips"}))
    assert traits(ssd, ctx(want(required=frozenset({"ssd"})))) is None
    assert traits(ssd, ctx(want(required=frozenset({"gpu", "avx512"})))) == (
        "lacks trait(s) avx512, gpu"
    )
    assert traits(ssd, ctx(want(forbidden=frozenset({"fips"})))) == "has forbidden trait(s) fips"


def test_capacity_reason_names_every_short_dimension_with_numbers() -> None:
    full = host("h1", usable=(8, 8192, 100), used=(7, 7168, 95))
    reason = capacity(full, ctx(want(vcpus=2, ram_mib=2048, disk_gib=5)))
    assert reason == (
        "vcpus: needs 2 vCPU, 1 free of 8; ram_mib: needs 2048 MiB RAM, 1024 free of 8192"
    )
    assert capacity(full, ctx(want(vcpus=1, ram_mib=1024, disk_gib=5))) is None


def test_capacity_matches_the_claim_update_on_over_committed_hosts() -> None:
    # A host whose capacity shrank below its claims: even a zero demand fails where
    # used > usable, as the conditional UPDATE (used + x <= usable) would.
    shrunk = host("h1", usable=(4, 4096, 10), used=(6, 8192, 20))
    assert capacity(shrunk, ctx(want(vcpus=1, ram_mib=64, disk_gib=0))) == (
        "vcpus: needs 1 vCPU, 0 free of 4; ram_mib: needs 64 MiB RAM, 0 free of 4096; "
        "disk_gib: needs 0 GiB disk, 0 free of 10"
    )


def test_checks_run_cheapest_first() -> None:
    assert [c.name for c in CHECKS] == [
        "host_state",
        "datacentre",
        "traits",
        "capacity",
        "server_group",
    ]


# -- policies ---------------------------------------------------------------------------------


def test_spread_prefers_the_host_with_most_room_left() -> None:
    view = (
        host("h1", used=(8, 8192, 50)),
        host("h2", used=(2, 2048, 10)),
        host("h3", used=(12, 12288, 80)),
    )
    plan = select(view, want())
    assert hosts_of(plan) == ["h2"]
    assert plan.placements[0].host_id == "id-h2"
    assert plan.explanation.evaluated == 3


def test_spread_score_is_the_tightest_dimension() -> None:
    view = (
        host("h1", usable=(64, 16384, 100), used=(0, 14336, 0)),
        host("h2", usable=(16, 16384, 100), used=(8, 8192, 50)),
    )
    assert hosts_of(select(view, want())) == ["h2"]


def test_pack_fills_used_hosts_first_then_the_largest_empty_one() -> None:
    view = (
        host("a-empty-small", usable=(4, 4096, 100)),
        host("b-empty-big", usable=(64, 65536, 1000)),
        host("c-used", used=(15, 15360, 10)),
    )
    plan = select(view, want(count=3, policy=PACK))
    # c-used has room for one; then the empty host holding the most copies is opened
    assert hosts_of(plan) == ["c-used", "b-empty-big", "b-empty-big"]
    assert hosts_of(select(view, want(count=3, policy=SPREAD)))[0] == "b-empty-big"


def test_count_places_on_one_snapshot_without_overcommitting() -> None:
    view = (host("h1", usable=(4, 4096, 100)), host("h2", usable=(4, 4096, 100)))
    plan = select(view, want(vcpus=1, ram_mib=1024, count=8))
    assert plan.complete
    assert sorted(hosts_of(plan)) == ["h1"] * 4 + ["h2"] * 4
    partial = select(view, want(vcpus=1, ram_mib=1024, count=9))
    assert len(partial.placements) == 8
    assert not partial.complete
    assert partial.explanation.outcome == "partial"
    assert partial.explanation.message.startswith("placed 8 of 9; then no valid host among 2")
    assert partial.explanation.capacity_short == {"ram_mib": 2, "vcpus": 2}


# -- server groups ----------------------------------------------------------------------------


def test_anti_affinity_puts_at_most_max_per_host_on_each_host() -> None:
    view = tuple(host(f"h{i}") for i in range(3))
    group = GroupView("g", "web", GroupPolicy.ANTI_AFFINITY, max_per_host=2)
    plan = select(view, want(count=6, policy=PACK, group=group))
    assert sorted(hosts_of(plan)) == ["h0", "h0", "h1", "h1", "h2", "h2"]
    plan = select(view, want(count=7, group=group))
    assert len(plan.placements) == 6
    assert plan.explanation.rejected == {"server_group": 3}


def test_affinity_keeps_members_together_and_finds_a_host_for_all() -> None:
    view = (host("a-small", usable=(2, 2048, 100), used=(1, 1024, 10)), host("b-big"))
    group = GroupView("g", "db", GroupPolicy.AFFINITY)
    assert hosts_of(select(view, want(count=3, policy=PACK, group=group))) == ["b-big"] * 3
    placed = GroupView("g", "db", GroupPolicy.AFFINITY, members={"id-a-small": 1})
    plan = select(view, want(count=2, group=placed))
    assert hosts_of(plan) == ["a-small"]  # room for one more there, and only there
    assert plan.explanation.rejected == {"capacity": 1, "server_group": 1}


def test_soft_rules_only_change_the_ranking() -> None:
    view = (host("h1"), host("h2"))
    soft_anti = GroupView("g", "w", GroupPolicy.SOFT_ANTI_AFFINITY, members={"id-h1": 1})
    assert hosts_of(select(view, want(group=soft_anti, policy=PACK))) == ["h2"]
    soft = GroupView("g", "w", GroupPolicy.SOFT_AFFINITY, members={"id-h2": 1})
    assert hosts_of(select(view, want(count=3, group=soft))) == ["h2"] * 3
    only_h1 = (host("h1"),)
    assert hosts_of(select(only_h1, want(count=2, group=soft_anti))) == ["h1", "h1"]


def test_commit_time_group_violation() -> None:
    anti = GroupPolicy.ANTI_AFFINITY
    assert violation(anti, 1, {}, ["a", "b"]) is None
    assert violation(anti, 1, {"a": 1}, ["a"]) is not None
    assert violation(anti, 2, {"a": 1}, ["a"]) is None
    assert violation(GroupPolicy.AFFINITY, None, {"a": 2}, ["a", "a"]) is None
    assert violation(GroupPolicy.AFFINITY, None, {"a": 2}, ["b"]) is not None
    assert violation(GroupPolicy.AFFINITY, None, {}, ["a", "b"]) is not None
    assert violation(GroupPolicy.SOFT_ANTI_AFFINITY, None, {"a": 5}, ["a"]) is None


# -- explanations -----------------------------------------------------------------------------


def test_explanation_counts_per_check_with_examples() -> None:
    view = (
        host("a-maint", state=HostState.MAINTENANCE, usable=(0, 0, 0)),
        host("b-other-dc", dc="txg-1"),
        host("c-small", usable=(8, 1024, 100), used=(0, 512, 0)),
    )
    plan = select(view, want(ram_mib=2048, dc="tpe-1"))
    assert plan.placements == ()
    expl = plan.explanation
    assert (expl.outcome, expl.evaluated, expl.feasible) == ("pending", 3, 0)
    assert {(e.host, e.check, e.reason) for e in expl.examples} == {
        ("a-maint", "host_state", "host is maintenance"),
        ("b-other-dc", "datacentre", "in data centre txg-1, not tpe-1"),
        ("c-small", "capacity", "ram_mib: needs 2048 MiB RAM, 512 free of 1024"),
    }
    assert expl.rejected == {"capacity": 1, "datacentre": 1, "host_state": 1}
    assert expl.capacity_short == {"ram_mib": 1}
    assert expl.fits_when_free == 0  # c-small could never hold 2048 MiB
    assert expl.message.startswith("no valid host among 3 evaluated")
    assert "1 by capacity, 1 by datacentre, 1 by host_state" in expl.message


def test_explanations_stay_bounded_on_big_fleets() -> None:
    view = tuple(host(f"h{i:05d}", usable=(1, 512, 1)) for i in range(2000))
    expl = select(view, want(vcpus=2, ram_mib=1024, disk_gib=1)).explanation
    assert expl.rejected == {"capacity": 2000}
    assert [e.host for e in expl.examples] == [f"h{i:05d}" for i in range(5)]
    assert expl.capacity_short == {"ram_mib": 2000, "vcpus": 2000}
    assert expl.message.endswith("; and 1995 more")
    assert len(expl.model_dump_json()) < 2000


def test_no_hosts_says_how_to_fix_it() -> None:
    assert "no hosts are registered" in select((), want()).explanation.message


# -- determinism ------------------------------------------------------------------------------


def test_ties_are_broken_by_the_seed_reproducibly() -> None:
    twins = tuple(host(f"h{i}") for i in range(6))
    chosen = {}
    for seed in range(40):
        plan = select(twins, want(), seed=seed)
        assert plan == select(twins, want(), seed=seed)
        chosen[seed] = hosts_of(plan)[0]
    assert len(set(chosen.values())) > 1


# -- properties (Hypothesis) ------------------------------------------------------------------

names = st.text(alphabet="abcdefgh0123456789-", min_size=1, max_size=8)
amount = st.integers(min_value=0, max_value=64)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[HostView, ...]:
    view = []
    for name in draw(st.lists(names, min_size=0, max_size=8, unique=True)):
        usable = tuple(draw(amount) for _ in DIMENSIONS)
        used = tuple(draw(st.integers(min_value=0, max_value=u + 4)) for u in usable)
        view.append(
            host(
                name,
                usable=(usable[0], usable[1], usable[2]),
                used=(used[0], used[1], used[2]),
                dc=draw(st.sampled_from(["tpe-1", "txg-1"])),
                state=draw(st.sampled_from(list(HostState))),
                dc_active=draw(st.booleans()),
                trait_set=frozenset(draw(st.lists(st.sampled_from(["ssd", "gpu", "fips"])))),
                generation=draw(st.integers(min_value=0, max_value=100)),
            )
        )
    return tuple(view)


@st.composite
def groups(draw: st.DrawFn, view: tuple[HostView, ...]) -> GroupView | None:
    policy = draw(st.sampled_from([None, *GroupPolicy]))
    if policy is None:
        return None
    members: dict[str, int] = {}
    if view and draw(st.booleans()):  # type: ignore[arg-type]
        target = draw(st.sampled_from(view)).id
        members[target] = draw(st.integers(min_value=1, max_value=2))
    cap = draw(st.sampled_from([None, 1, 2])) if policy is GroupPolicy.ANTI_AFFINITY else None
    if policy is GroupPolicy.ANTI_AFFINITY:
        members = {h: min(n, cap or 1) for h, n in members.items()}
    return GroupView("g", "grp", policy, max_per_host=cap, members=members)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[HostView, ...], PlacementRequest]:
    view = draw(fleets())
    request = want(
        vcpus=draw(st.integers(min_value=1, max_value=16)),
        ram_mib=draw(st.integers(min_value=0, max_value=32)),
        disk_gib=draw(st.integers(min_value=0, max_value=32)),
        dc=draw(st.sampled_from([None, "tpe-1", "txg-1"])),
        required=draw(st.frozensets(st.sampled_from(["ssd", "gpu"]), max_size=1)),
        forbidden=draw(st.frozensets(st.sampled_from(["fips"]), max_size=1)),
        count=draw(st.integers(min_value=1, max_value=12)),
        policy=draw(st.sampled_from(list(PlacementPolicy))),
        group=draw(groups(view)),
    )
    return view, request


def _used_after(
    view: tuple[HostView, ...], plan: Plan, request: PlacementRequest
) -> dict[str, tuple[int, ...]]:
    return {
        h.id: tuple(
            getattr(h, f"used_{d}")
            + sum(p.host_id == h.id for p in plan.placements) * getattr(request.resources, d)
            for d in DIMENSIONS
        )
        for h in view
    }


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=2**32))
def test_never_over_capacity_and_never_breaks_a_hard_group_rule(
    scenario: tuple[tuple[HostView, ...], PlacementRequest], seed: int
) -> None:
    view, request = scenario
    plan = select(view, request, seed=seed)
    assert len(plan.placements) <= request.count
    by_id = {h.id: h for h in view}
    after = _used_after(view, plan, request)
    for placement in plan.placements:
        chosen = by_id[placement.host_id]
        c = Context.of(want())
        assert all(check(chosen, Context.of(request)) is None for check in CHECKS[:3]), c
        for d, used in zip(DIMENSIONS, after[chosen.id], strict=True):
            assert used <= getattr(chosen, f"usable_{d}"), (chosen, d)
    group = request.group
    if group is not None and group.policy.hard:
        assert (
            violation(group.policy, group.cap, group.members, [p.host_id for p in plan.placements])
            is None
        )


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=2**32), st.randoms())
def test_same_seed_same_plan_in_any_input_order(
    scenario: tuple[tuple[HostView, ...], PlacementRequest], seed: int, rnd: random.Random
) -> None:
    view, request = scenario
    first = select(view, request, seed=seed)
    shuffled = list(view)
    rnd.shuffle(shuffled)
    assert select(tuple(shuffled), request, seed=seed) == first


@settings(max_examples=120, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=2**32))
def test_pack_never_uses_more_hosts_than_spread(
    scenario: tuple[tuple[HostView, ...], PlacementRequest], seed: int
) -> None:
    view, request = scenario
    group = request.group
    if group is not None and group.policy is not GroupPolicy.ANTI_AFFINITY:
        request = PlacementRequest(request.resources, request.datacentre, count=request.count)
    plans = {
        policy: select(
            view,
            PlacementRequest(
                request.resources,
                request.datacentre,
                request.required_traits,
                request.forbidden_traits,
                request.count,
                policy,
                request.group,
            ),
            seed=seed,
        )
        for policy in PlacementPolicy
    }
    in_use = {}
    for policy, plan in plans.items():
        after = _used_after(view, plan, request)
        in_use[policy] = sum(any(v > 0 for v in used) for used in after.values())
    # both place as many as fit; pack leaves at most as many hosts in use
    assert len(plans[PACK].placements) == len(plans[SPREAD].placements)
    assert in_use[PACK] <= in_use[SPREAD], (in_use, plans)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=1000))
def test_plan_iff_some_host_passes_and_reasons_are_well_formed(
    scenario: tuple[tuple[HostView, ...], PlacementRequest], seed: int
) -> None:
    view, request = scenario
    plan = select(view, request, seed=seed)
    feasible = {h.name for h in view if all(c(h, Context.of(request)) is None for c in CHECKS)}
    assert bool(plan.placements) == bool(feasible)
    assert {p.host_name for p in plan.placements[:1]} <= feasible
    expl = plan.explanation
    assert expl.evaluated == len(view)
    if not plan.placements:
        assert sum(expl.rejected.values()) == len(view)
    for example in expl.examples:
        if example.check == "capacity":
            assert re.fullmatch(
                r"(\w+: needs \d+ [\w ]+, \d+ free of \d+)(; \w+: needs \d+ [\w ]+, "
                r"\d+ free of \d+)*",
                example.reason,
            ), example.reason


@settings(max_examples=50, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=1000))
def test_fast_ranking_equals_the_generic_rank(
    scenario: tuple[tuple[HostView, ...], PlacementRequest], seed: int
) -> None:
    view, request = scenario
    c = Context.of(request)
    hosts = list(view)
    assert rank_all(hosts, c, request.policy, seed, request.count) == [
        (rank(h, c, request.policy, seed, request.count), i) for i, h in enumerate(hosts)
    ]
