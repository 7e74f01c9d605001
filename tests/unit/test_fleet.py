"""``Fleet``: the array snapshot equals its hosts, and deriving one (``replace``,
``without``, ``only``) equals rebuilding it with ``Fleet.of`` (Hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.resources import Resources
from controlplane.scheduler import HostView, PlacementRequest, select
from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.view import SCHEDULABLE

DCS = ("tpe-1", "txg-1", "khh-1", "new-dc")


def host(i: int, name: str | None = None, **fields: object) -> HostView:
    base = HostView(f"id-{i}", name or f"h{i:03d}", "tpe-1", "active", 8, 64, 100)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def assert_same(fleet: Fleet, hosts: list[HostView], views: bool = True) -> None:
    """``fleet`` holds exactly ``hosts`` (in order) and equals ``Fleet.of(hosts)``; so do
    its views of one data centre (``views``)."""
    rebuilt = Fleet.of(hosts)
    assert fleet.hosts == tuple(hosts) == rebuilt.hosts
    assert len(fleet) == len(hosts)
    assert [fleet.host(i) for i in range(len(hosts))] == hosts
    dims = ("vcpus", "ram_mib", "disk_gib")
    expected_usable = [[getattr(h, f"usable_{d}") for h in hosts] for d in dims]
    expected_used = [[getattr(h, f"used_{d}") for h in hosts] for d in dims]
    for f in (fleet, rebuilt):
        assert f.usable.reshape(3, -1).tolist() == expected_usable
        assert f.used.reshape(3, -1).tolist() == expected_used
        assert f.generation.tolist() == [h.generation for h in hosts]
        assert f.placeable.tolist() == [
            h.state in SCHEDULABLE and h.datacentre_active for h in hosts
        ]
        assert [f.datacentres[c] for c in f.datacentre.tolist()] == [h.datacentre for h in hosts]
        assert [f.trait_sets[c] for c in f.traits.tolist()] == [h.traits for h in hosts]
        assert [f.position(h.id) for h in hosts] == list(range(len(hosts)))
        for code, name in enumerate(f.datacentres):
            assert f.datacentre_code(name) == code
    for seed in (0, 12345):
        assert fleet.tiebreak(seed).tolist() == rebuilt.tiebreak(seed).tolist()
    assert fleet.name_rank().tolist() == rebuilt.name_rank().tolist()
    if not views:
        return
    for dc in DCS:
        assert_same(fleet.only(dc), [h for h in hosts if h.datacentre == dc], views=False)
    request = PlacementRequest(Resources(vcpus=1, ram_mib=8, disk_gib=10), count=3)
    assert select(fleet, request, 7) == select(hosts, request, 7)


changes = st.fixed_dictionaries(
    {},
    optional={
        "used_vcpus": st.integers(0, 9),
        "used_ram_mib": st.integers(0, 70),
        "usable_disk_gib": st.integers(0, 120),
        "state": st.sampled_from(["active", "maintenance", "down"]),
        "datacentre": st.sampled_from(DCS),
        "datacentre_active": st.booleans(),
        "traits": st.frozensets(st.sampled_from(["ssd", "gpu", "new"]), max_size=2),
        "generation": st.integers(0, 50),
    },
)
renames = st.fixed_dictionaries({"name": st.sampled_from(["renamed-a", "renamed-b", "a", "zz"])})
operations = st.one_of(
    # mostly known ids and the same names (memoised values carry over), sometimes not
    st.tuples(st.just("replace"), st.lists(st.tuples(st.integers(0, 11), changes), max_size=4)),
    st.tuples(
        st.just("replace"),
        st.lists(st.tuples(st.integers(0, 40), st.one_of(changes, renames)), max_size=3),
    ),
    st.tuples(st.just("without"), st.lists(st.integers(0, 40), max_size=3)),
    st.tuples(st.just("only"), st.sampled_from(DCS)),
    st.tuples(st.just("derive"), st.integers(0, 3)),  # compute memoised values first
)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 12), st.lists(operations, max_size=8))
def test_derived_fleets_equal_rebuilt_ones(size: int, ops: list[tuple[str, object]]) -> None:
    hosts = [host(i, datacentre=DCS[i % 3]) for i in range(size)]
    fleet = Fleet.of(hosts)
    for op, arg in ops:
        if op == "replace":
            assert isinstance(arg, list)
            changed = []
            for i, fields in arg:
                current = next((h for h in hosts if h.id == f"id-{i}"), None)
                changed.append(dataclasses.replace(current or host(i), **fields))
            for new in changed:  # the model: replace in place, else append
                at = next((k for k, h in enumerate(hosts) if h.id == new.id), None)
                if at is None:
                    hosts.append(new)
                else:
                    hosts[at] = new
            fleet = fleet.replace(changed)
        elif op == "without":
            assert isinstance(arg, list)
            gone = {f"id-{i}" for i in arg} | {"unknown"}
            hosts = [h for h in hosts if h.id not in gone]
            fleet = fleet.without(gone)
        elif op == "only":
            assert isinstance(arg, str)
            hosts = [h for h in hosts if h.datacentre == arg]
            fleet = fleet.only(arg)
        else:
            fleet.name_rank()
            fleet.tiebreak(int(str(arg)))
            for dc in DCS:
                fleet.only(dc)
        assert_same(fleet, hosts)


def test_replace_patches_lazily_and_older_fleets_never_change() -> None:
    hosts = [host(i) for i in range(600)]
    first = Fleet.of(hosts)
    first.name_rank()
    fleet = first
    for i in range(300):  # more patches than are kept lazily: the tuple is rebuilt
        fleet = fleet.replace([host(i, used_vcpus=i % 8)])
        assert fleet.host(i).used_vcpus == i % 8
    assert first.hosts == tuple(hosts)
    assert first.used[0].tolist() == [0] * 600
    assert fleet.used[0].tolist() == [i % 8 for i in range(300)] + [0] * 300
    assert fleet.replace([]) is fleet
    assert fleet.without(["nope"]) is fleet
    with pytest.raises(ValueError):
        fleet.used[0, 0] = 1  # read-only columns


def test_only_is_memoised_and_empty_for_unknown_data_centres() -> None:
    fleet = Fleet.of([host(0, datacentre="tpe-1"), host(1, datacentre="txg-1")])
    assert fleet.only("tpe-1") is fleet.only("tpe-1")
    assert [h.name for h in fleet.only("txg-1").hosts] == ["h001"]
    empty = fleet.only("nowhere")
    assert len(empty) == 0
    assert empty.usable.shape == (3, 0)
    request = PlacementRequest(Resources(vcpus=1, ram_mib=8, disk_gib=1))
    assert "no hosts are registered" in select(empty, request).explanation.message


def test_first_by_name_keeps_the_first_k_in_name_order() -> None:
    names = ["m", "b", "x", "a", "k", "c", "z"]
    fleet = Fleet.of([host(i, name=n) for i, n in enumerate(names)])
    chosen = fleet.first_by_name(np.arange(len(names)), 3)
    assert [names[p] for p in chosen.tolist()] == ["a", "b", "c"]
    odd = fleet.first_by_name(np.array([0, 2, 4, 6]), 5)
    assert [names[p] for p in odd.tolist()] == ["k", "m", "x", "z"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=150), st.integers(1, 6)
)
def test_first_by_name_directly_and_by_the_name_order(names: list[str], k: int) -> None:
    # duplicate names: ties by position; small sets are sorted directly, large ones (and
    # any set once the fleet's name order exists) through the name order
    fleet = Fleet.of([host(i, name=n) for i, n in enumerate(names)])
    every = np.arange(len(names))
    expected = sorted(range(len(names)), key=lambda p: (names[p], p))[:k]
    assert fleet.first_by_name(every, k).tolist() == expected
    fleet.name_rank()
    assert fleet.first_by_name(every, k).tolist() == expected
