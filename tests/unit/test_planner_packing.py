"""Bin packing of the planner: known answers and Hypothesis properties (never over a
host's capacity in any dimension, every item exactly once, hosts >= the lower bound,
deterministic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.planner.packing import _Bins, _improve, fits, lower_bound, pack

CAP = (16, 64, 100)


def test_lower_bound_is_the_largest_dimension_ratio_rounded_up() -> None:
    items = [(4, 10, 1)] * 9  # 36 vCPU over 16 -> 3; RAM 90 over 64 -> 2
    assert lower_bound(items, CAP) == 3
    assert lower_bound([], CAP) == 0


def test_lower_bound_counts_items_bigger_than_half_a_host() -> None:
    items = [(1, 40, 1)] * 3  # 120 of 64 RAM -> 2 by sum, but no two share a host
    assert lower_bound(items, CAP) == 3


def test_identical_items_pack_perfectly() -> None:
    packing = pack([(4, 16, 10)] * 12, CAP)  # four per host by vCPU and RAM
    assert (packing.hosts, packing.lower_bound) == (3, 3)
    assert all(load == (16, 64, 40) for load in packing.loads)


def test_mixed_items_where_first_fit_needs_a_smarter_order() -> None:
    # Two big (10 vCPU) and two small (6 vCPU): pairs of 16 fill two hosts exactly.
    packing = pack([(6, 1, 1), (10, 1, 1), (6, 1, 1), (10, 1, 1)], CAP)
    assert packing.hosts == 2


def test_an_item_larger_than_a_host_is_refused() -> None:
    assert not fits((17, 1, 1), CAP)
    with pytest.raises(ValueError, match="does not fit an empty host"):
        pack([(17, 1, 1)], CAP)


def test_the_improvement_pass_empties_a_nearly_empty_host() -> None:
    items = [(15, 1, 1), (15, 1, 1), (1, 1, 1), (1, 1, 1)]
    bins = _Bins(CAP)
    for index in range(4):  # a poor start: one item per host
        bins.put(bins.open(), index, items[index])
    assert _improve(bins, items, [1 / c for c in CAP], floor=2)
    assert len(bins.rem) == 2
    assert sorted(map(sorted, bins.items)) == [[0, 2], [1, 3]]


items_strategy = st.lists(
    st.tuples(st.integers(0, 16), st.integers(0, 64), st.integers(0, 100)),
    max_size=60,
)


@given(items_strategy)
def test_packing_is_valid_and_never_beats_the_lower_bound(items: list[tuple[int, ...]]) -> None:
    packing = pack(items, CAP)
    placed = sorted(i for host in packing.bins for i in host)
    assert placed == list(range(len(items)))
    for host, load in zip(packing.bins, packing.loads, strict=True):
        assert host, "no empty hosts"
        summed = tuple(sum(items[i][d] for i in host) for d in range(3))
        assert summed == load
        assert all(used <= cap for used, cap in zip(load, CAP, strict=True))
    assert packing.hosts >= packing.lower_bound == lower_bound(items, CAP)
    assert pack(items, CAP) == packing


@given(
    st.lists(
        st.tuples(*(st.integers(0, 1000) for _ in range(6))),
        min_size=1,
        max_size=40,
    )
)
def test_six_dimensions_like_sizing(items: list[tuple[int, ...]]) -> None:
    cap = (1000,) * 6
    packing = pack(items, cap)
    assert all(max(load) <= 1000 for load in packing.loads)
    assert packing.hosts >= packing.lower_bound
    assert packing.hosts <= len(items)
