"""The vectorised scheduler equals its per-host definition: ``select`` against the oracle
(``scheduler_oracle.select``), every check's ``mask`` against its ``rejects``, and the
vectorised rank keys against ``scores.rank``, on random fleets (Hypothesis)."""

from __future__ import annotations

import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler import GroupView, HostView, PlacementRequest, select
from controlplane.scheduler.checks import CHECKS
from controlplane.scheduler.context import Context
from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.ranking import Ranking
from controlplane.scheduler.scores import rank, rank_columns
from tests.unit import scheduler_oracle

#: Two names with the same CRC-32 (for any seed, being of equal length): ties that only
#: the name breaks.
COLLIDING = ("plumless", "buckeroo")
DCS = ("tpe-1", "txg-1", "khh-1")
TRAITS = ("ssd", "gpu", "fips")

names = st.one_of(st.sampled_from(COLLIDING), st.text(alphabet="abcxyz0123-", max_size=6))
states = st.sampled_from([s.value for s in HostState])
#: Hosts are either drawn freely or copied from a few shapes (so keys tie often).
shapes = st.tuples(
    st.integers(0, 16), st.integers(0, 64), st.integers(0, 40)
)  # usable vcpus, ram, disk


@st.composite
def hosts(draw: st.DrawFn, max_size: int = 30) -> list[HostView]:
    shape_pool = draw(st.lists(shapes, min_size=1, max_size=3))
    out = []
    for i, name in enumerate(draw(st.lists(names, max_size=max_size, unique=True))):
        usable = draw(st.one_of(st.sampled_from(shape_pool), shapes))
        used = draw(
            st.one_of(
                st.just((0, 0, 0)),
                st.tuples(*(st.integers(0, u + 3) for u in usable)),
            )
        )
        out.append(
            HostView(
                id=f"id-{i}-{name}",
                name=name,
                datacentre=draw(st.sampled_from(DCS)),
                state=draw(st.one_of(st.just("active"), states)),
                usable_vcpus=usable[0],
                usable_ram_mib=usable[1],
                usable_disk_gib=usable[2],
                used_vcpus=used[0],
                used_ram_mib=used[1],
                used_disk_gib=used[2],
                traits=frozenset(draw(st.lists(st.sampled_from(TRAITS), max_size=2))),
                datacentre_active=draw(st.booleans()) or draw(st.booleans()),
                generation=draw(st.integers(0, 9)),
            )
        )
    return out


@st.composite
def groups(draw: st.DrawFn, view: list[HostView]) -> GroupView | None:
    policy = draw(st.sampled_from([None, *GroupPolicy]))
    if policy is None:
        return None
    cap = draw(st.sampled_from([None, 1, 2, 3]))
    members: dict[str, int] = {}
    if view:
        for host in draw(st.lists(st.sampled_from(view), max_size=3)):
            members[host.id] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        members["id-of-a-deleted-host"] = 1
    return GroupView("g", "grp", policy, max_per_host=cap, members=members)


@st.composite
def requests(draw: st.DrawFn, view: list[HostView]) -> PlacementRequest:
    return PlacementRequest(
        resources=Resources(
            vcpus=draw(st.integers(0, 6)),
            ram_mib=draw(st.integers(0, 24)),
            disk_gib=draw(st.integers(0, 16)),
        ),
        datacentre=draw(st.sampled_from([None, *DCS, "nowhere"])),
        required_traits=draw(st.frozensets(st.sampled_from(TRAITS), max_size=2)),
        forbidden_traits=draw(st.frozensets(st.sampled_from(TRAITS), max_size=1)),
        count=draw(st.integers(1, 40)),
        policy=draw(st.sampled_from(list(PlacementPolicy))),
        group=draw(groups(view)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[HostView], PlacementRequest, int]:
    view = draw(hosts())
    return view, draw(requests(view)), draw(st.integers(0, 2**32 + 5))


@st.composite
def contexts(draw: st.DrawFn) -> tuple[list[HostView], Context, int]:
    """A fleet and a decision's context part-way through: some claims already made."""
    view, request, remaining = draw(hosts()), None, draw(st.integers(1, 5))
    request = draw(requests(view))
    ctx = Context.of(request)
    for host in draw(st.lists(st.sampled_from(view), max_size=4)) if view else []:
        ctx.claim(host)
    return view, ctx, remaining


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_select_equals_the_per_host_oracle(
    scenario: tuple[list[HostView], PlacementRequest, int],
) -> None:
    view, request, seed = scenario
    expected = scheduler_oracle.select(tuple(view), request, seed)
    assert select(tuple(view), request, seed) == expected
    assert select(Fleet.of(view), request, seed) == expected
    assert select(view, request, seed) == expected  # any sequence


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.sampled_from(list(PlacementPolicy)), st.integers(0, 2**32))
def test_select_equals_the_oracle_on_a_uniform_fleet_filling_up(
    count: int, policy: PlacementPolicy, seed: int
) -> None:
    # identical hosts: every decision is settled by the seeded tie-break and the claims
    view = [HostView(f"id-{i}", f"h{i:02d}", "tpe-1", "active", 4, 8, 40) for i in range(12)]
    request = PlacementRequest(Resources(vcpus=1, ram_mib=3, disk_gib=10), count=count)
    request = PlacementRequest(request.resources, count=count, policy=policy)
    assert select(view, request, seed) == scheduler_oracle.select(view, request, seed)


@settings(max_examples=100, deadline=None)
@given(contexts())
def test_masks_equal_the_per_host_checks(scenario: tuple[list[HostView], Context, int]) -> None:
    view, ctx, _ = scenario
    fleet = Fleet.of(view)
    for check in CHECKS:
        mask = check.mask(fleet, ctx)
        assert mask.dtype == np.bool_
        assert mask.shape == (len(view),)
        assert mask.tolist() == [check.rejects(h, ctx) for h in view], check.name


@settings(max_examples=100, deadline=None)
@given(contexts(), st.integers(0, 2**32))
def test_rank_columns_equal_the_per_host_rank(
    scenario: tuple[list[HostView], Context, int], seed: int
) -> None:
    view, ctx, remaining = scenario
    fleet = Fleet.of(view)
    at = np.arange(len(view))
    tiebreak = fleet.tiebreak(seed).tolist()
    for policy in PlacementPolicy:
        preference, first, second = rank_columns(fleet, ctx, policy, remaining, at)
        got = [
            (p, a, b, t, h.name)
            for h, p, a, b, t in zip(
                view, preference.tolist(), first.tolist(), second.tolist(), tiebreak, strict=True
            )
        ]
        # bit-identical floats, not merely close
        assert got == [rank(h, ctx, policy, seed, remaining) for h in view]


def test_the_tie_break_is_crc32_seeded_through_the_affine_identity() -> None:
    names_ = ["", "a", "plumless", "buckeroo", "台北-1", "x" * 70]
    view = [HostView(f"i{n}", n, "tpe-1", "active", 1, 1, 1) for n in names_]
    fleet = Fleet.of(view)
    for seed in (0, 1, 0xFFFFFFFF, 2**32 + 7, -3):
        assert fleet.tiebreak(seed).tolist() == [
            zlib.crc32(n.encode(), seed & 0xFFFFFFFF) for n in names_
        ]


def test_ranking_breaks_full_ties_by_name_and_skips_dropped_hosts() -> None:
    view = [HostView(f"id-{n}", n, "tpe-1", "active", 8, 8, 8) for n in (*COLLIDING, "zz")]
    fleet = Fleet.of(view)
    at = np.arange(3)
    zeros = np.zeros(3)
    tiebreak = np.array([7, 7, 7], np.uint32)
    ranking = Ranking(fleet, at, (zeros, zeros, zeros), tiebreak)
    assert fleet.host(ranking.best() or 0).name == "buckeroo"
    ranking.drop(1)
    assert fleet.host(ranking.best() or 0).name == "plumless"
    ranking.update(0, (0.0, 0.0, 1.0, 7, "plumless"))  # now worse than zz
    assert fleet.host(ranking.best() or 0).name == "zz"
    ranking.drop_where(np.array([True, True, True]))
    assert ranking.best() is None


small = st.sampled_from([-0.0, 0.0, 1.0])  # -0.0 == 0.0: a tie, as in Python
operations = st.lists(
    st.tuples(
        st.sampled_from(["best", "update", "drop", "drop_where"]),
        st.integers(0, 30),
        st.tuples(small, small, small),
        st.lists(st.booleans(), min_size=31, max_size=31),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "dd"]), min_size=1, max_size=30),
    st.data(),
    st.integers(1, 6),
    operations,
)
def test_ranking_equals_a_sorted_model_under_updates_and_drops(
    names_: list[str],
    data: st.DataObject,
    depth: int,
    ops: list[tuple[str, int, tuple[float, float, float], list[bool]]],
) -> None:
    # duplicate names and few distinct values: ties at every level, down to the position
    n = len(names_)
    view = [HostView(f"id-{i}", name, "tpe-1", "active", 1, 1, 1) for i, name in enumerate(names_)]
    fleet = Fleet.of(view)
    at = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1))), np.intp)
    rows = len(at)
    columns = tuple(
        np.array(data.draw(st.lists(small, min_size=rows, max_size=rows))) for _ in "abc"
    )
    tiebreak = np.array(
        data.draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows)), np.uint32
    )
    ranking = Ranking(fleet, at, columns, tiebreak, depth)
    model = {
        int(p): (*(float(c[r]) for c in columns), int(tiebreak[r]), names_[p], int(p))
        for r, p in enumerate(at.tolist())
    }
    for op, pick, values, flags in ops:
        live = sorted(model)
        if op == "best" or not live:
            assert ranking.best() == (min(model.values())[-1] if model else None)
            assert ranking.alive == len(model)
        elif op == "update":
            p = live[pick % len(live)]
            rank = (*values, model[p][3], names_[p])
            ranking.update(p, rank)
            model[p] = (*rank, p)
        elif op == "drop":
            p = live[pick % len(live)]
            ranking.drop(p)
            del model[p]
        else:
            mask = np.array(flags[:n])
            ranking.drop_where(mask)
            model = {p: k for p, k in model.items() if not mask[p]}
    assert ranking.best() == (min(model.values())[-1] if model else None)
