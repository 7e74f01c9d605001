"""Quota engine: vectors, the hierarchical check at its boundaries, and Hypothesis invariants
(never over any ancestor's limit whatever order accepted requests come in; every violation
at every level is listed; unset means unlimited; a lowered limit blocks and is flagged)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas import (
    DIMENSIONS,
    Limits,
    Usage,
    charge,
    check,
    headroom,
    over_limit,
    over_soft_threshold,
    release,
)

# A small tree: gov -> {motc, moe} -> agencies -> projects.
PARENT: dict[str, str | None] = {
    "gov": None,
    "motc": "gov",
    "moe": "gov",
    "motc-thb": "motc",
    "motc-cwa": "motc",
    "moe-k12": "moe",
    "thb-roads": "motc-thb",
    "thb-bridges": "motc-thb",
    "cwa-radar": "motc-cwa",
    "k12-portal": "moe-k12",
}
KIND = {0: "root", 1: "ministry", 2: "agency", 3: "project"}
PROJECTS = ("thb-roads", "thb-bridges", "cwa-radar", "k12-portal")
NODES = tuple(PARENT)


def path_of(node: str) -> tuple[str, ...]:
    out: list[str] = []
    current: str | None = node
    while current is not None:
        out.append(current)
        current = PARENT[current]
    return tuple(reversed(out))


def kinds_of(path: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(KIND[i] for i in range(len(path)))


def subtree_usage(allocations: list[tuple[str, Usage]]) -> dict[str, Usage]:
    """Usage per node computed from the leaf allocations (independently of ``charge``)."""
    out = {node: Usage() for node in NODES}
    for project, amount in allocations:
        for node in path_of(project):
            out[node] = out[node] + amount
    return out


# --- vectors -------------------------------------------------------------------------------


def test_usage_arithmetic_and_canonical_form() -> None:
    a = Usage.of(instances=1, vcpus=4, ram_mib=8192)
    b = Usage({"vcpus": 2, "disk_gib": 40, "trial_envs": 0})
    assert (a + b).as_dict() == {"instances": 1, "vcpus": 6, "ram_mib": 8192, "disk_gib": 40}
    assert (a + b) - b == a
    assert a * 3 == Usage.of(instances=3, vcpus=12, ram_mib=24576)
    assert Usage.of(vcpus=0) == Usage()
    assert not Usage()
    assert hash(Usage.of(vcpus=1, instances=1)) == hash(Usage({"instances": 1, "vcpus": 1}))
    assert a["disk_gib"] == 0
    assert list(a) == ["instances", "vcpus", "ram_mib"]
    assert a.describe() == "1 instances, 4 vCPU, 8192 MiB RAM"
    assert Usage.of(trial_envs=1)["trial_envs"] == 1


def test_usage_comparison_is_per_dimension() -> None:
    a = Usage.of(vcpus=4, ram_mib=100)
    b = Usage.of(vcpus=2, ram_mib=200)
    assert not a <= b
    assert not b <= a
    assert a.above(b) == ("vcpus",)
    assert b.above(a) == ("ram_mib",)
    assert Usage.of(vcpus=2) <= a
    assert a >= Usage.of(vcpus=2)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Usage.of(vcpu=1), "unknown dimension 'vcpu'"),
        (lambda: Usage.of(vcpus=-1), "vcpus must be a non-negative integer, got -1"),
        (lambda: Usage({"vcpus": True}), "vcpus must be a non-negative integer, got True"),
        (lambda: Usage.of(vcpus=1) - Usage.of(vcpus=2), "cannot release 2 vcpus: only 1 held"),
        (lambda: Limits.of(vcpus=-3), "vcpus must be a non-negative integer, got -3"),
        (lambda: Limits.of(soft_threshold=1.5), "soft_threshold must be a number in"),
        (lambda: Limits.of(soft_threshold=0), "soft_threshold must be a number in"),
    ],
)
def test_invalid_vectors_and_limits_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- the check at its boundaries ----------------------------------------------------------

MOTC = ("gov", "motc", "motc-thb", "thb-roads")
MOTC_KINDS = ("root", "ministry", "agency", "project")


def test_message_style_and_boundary_is_exact() -> None:
    limits = {"motc": Limits.of(vcpus=512)}
    usage = {"motc": Usage.of(vcpus=508)}
    assert check(MOTC, MOTC_KINDS, Usage.of(vcpus=4), usage, limits).ok  # 508 + 4 == 512
    result = check(MOTC, MOTC_KINDS, Usage.of(vcpus=5), usage, limits)  # one more
    assert not result.ok
    assert result.message == "ministry motc: vcpus 508 used + 5 requested > limit 512"
    usage = {"motc": Usage.of(vcpus=510)}
    result = check(MOTC, MOTC_KINDS, Usage.of(vcpus=4), usage, limits)
    assert [v.message for v in result.violations] == [
        "ministry motc: vcpus 510 used + 4 requested > limit 512"
    ]
    assert result.violations[0].over_by == 2
    assert result.violations[0].to_dict()["dimension"] == "vcpus"


def test_every_violation_at_every_level_is_listed_root_first() -> None:
    limits = {
        "gov": Limits.of(instances=1000, vcpus=100),
        "motc": Limits.of(vcpus=50, ram_mib=1024),
        "motc-thb": Limits.of(vcpus=10, disk_gib=5),
        "thb-roads": Limits.of(vcpus=1000),
    }
    usage = {"gov": Usage.of(vcpus=99), "motc": Usage.of(vcpus=49, ram_mib=1000)}
    request = Usage.of(instances=1, vcpus=16, ram_mib=2048, disk_gib=10)
    result = check(MOTC, MOTC_KINDS, request, usage, limits)
    assert [(v.node, v.dimension) for v in result.violations] == [
        ("gov", "vcpus"),
        ("motc", "vcpus"),
        ("motc", "ram_mib"),
        ("motc-thb", "vcpus"),
        ("motc-thb", "disk_gib"),
    ]
    assert result.message.split("; ")[0] == "root gov: vcpus 99 used + 16 requested > limit 100"


def test_unset_is_unlimited_and_zero_forbids() -> None:
    huge = Usage.of(instances=10**9, vcpus=10**9, ram_mib=10**12, disk_gib=10**12)
    assert check(MOTC, MOTC_KINDS, huge, {}, {}).ok
    limits = {"motc": Limits.of(vcpus=None, trial_envs=0)}
    assert check(MOTC, MOTC_KINDS, huge, {}, limits).ok
    result = check(MOTC, MOTC_KINDS, Usage.of(trial_envs=1), {}, limits)
    assert result.message == "ministry motc: trial_envs 0 used + 1 requested > limit 0"


def test_parent_caps_children_whose_limits_add_up_to_more() -> None:
    limits = {
        "motc": Limits.of(vcpus=100),
        "motc-thb": Limits.of(vcpus=80),
        "motc-cwa": Limits.of(vcpus=80),
    }
    usage = charge({}, path_of("thb-roads"), Usage.of(vcpus=70))
    path = path_of("cwa-radar")
    assert check(path, kinds_of(path), Usage.of(vcpus=30), usage, limits).ok
    result = check(path, kinds_of(path), Usage.of(vcpus=31), usage, limits)
    assert [(v.node, v.used) for v in result.violations] == [("motc", 70)]


def test_lowered_limit_blocks_new_usage_only_in_that_dimension_and_is_flagged() -> None:
    usage = charge({}, MOTC, Usage.of(instances=10, vcpus=600, ram_mib=4096))
    limits = {"motc": Limits.of(vcpus=512, ram_mib=8192)}  # lowered below the 600 in use
    flagged = over_limit(usage, limits, {"motc": "ministry"})
    assert [f.message for f in flagged] == ["ministry motc: vcpus 600 used > limit 512"]
    assert not check(MOTC, MOTC_KINDS, Usage.of(vcpus=1), usage, limits).ok
    assert check(MOTC, MOTC_KINDS, Usage.of(ram_mib=1024), usage, limits).ok
    assert headroom(MOTC, usage, limits)["vcpus"] == 0
    # releasing usage is always possible and brings the node back under its limit
    usage = release(usage, MOTC, Usage.of(instances=1, vcpus=100))
    assert over_limit(usage, limits) == ()


def test_soft_threshold_warns_on_crossing() -> None:
    limits = {"motc-thb": Limits.of(vcpus=128, soft_threshold=0.8)}  # warns from 102.4
    usage = {"motc-thb": Usage.of(vcpus=100)}
    assert check(MOTC, MOTC_KINDS, Usage.of(vcpus=2), usage, limits).soft_warnings == ()
    result = check(MOTC, MOTC_KINDS, Usage.of(vcpus=4), usage, limits)
    assert result.ok
    [warning] = result.soft_warnings
    assert warning.crossed
    assert warning.message == (
        "agency motc-thb: vcpus 100 used + 4 requested = 104 >= 80% of limit 128"
    )
    usage = {"motc-thb": Usage.of(vcpus=104)}
    [again] = check(MOTC, MOTC_KINDS, Usage.of(vcpus=1), usage, limits).soft_warnings
    assert not again.crossed
    [gauge] = over_soft_threshold(usage, limits)
    assert gauge.message == "motc-thb: vcpus 104 used >= 80% of limit 128"


def test_bad_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        check((), (), Usage(), {}, {})
    with pytest.raises(ValueError, match="2 nodes but 1 kinds"):
        check(("gov", "motc"), ("root",), Usage(), {}, {})
    with pytest.raises(ValueError, match="repeats a node"):
        check(("gov", "gov"), ("root", "root"), Usage(), {}, {})


def test_inputs_are_not_mutated() -> None:
    usage = {"gov": Usage.of(vcpus=1)}
    charged = charge(usage, ("gov",), Usage.of(vcpus=1))
    assert usage == {"gov": Usage.of(vcpus=1)}
    assert charged["gov"] == Usage.of(vcpus=2)
    limits = Limits.of(vcpus=1)
    with pytest.raises(AttributeError):
        limits.soft_threshold = 0.5  # type: ignore[misc]


# --- Hypothesis invariants ----------------------------------------------------------------

QUOTA_DIMS = ("instances", "vcpus", "ram_mib")
amounts = st.integers(min_value=0, max_value=6)
requests = st.builds(
    lambda i, v, r: Usage.of(instances=i, vcpus=v, ram_mib=r), amounts, amounts, amounts
)
node_limits = st.builds(
    lambda caps, t: Limits(caps, soft_threshold=t),
    st.fixed_dictionaries({d: st.none() | st.integers(0, 30) for d in QUOTA_DIMS}),
    st.sampled_from([0.5, 0.8, 1.0]),
)
limit_maps = st.dictionaries(st.sampled_from(NODES), node_limits)
operations = st.lists(
    st.tuples(st.sampled_from(PROJECTS), requests, st.booleans()), min_size=1, max_size=40
)


def over(usage: Mapping[str, Usage], limits: Mapping[str, Limits]) -> set[tuple[str, str]]:
    """Brute-force oracle: every (node, dimension) whose usage exceeds its cap."""
    return {
        (node, dim)
        for node, lim in limits.items()
        for dim in DIMENSIONS
        if (cap := lim.get(dim)) is not None and usage.get(node, Usage())[dim] > cap
    }


@settings(max_examples=200, deadline=None)
@given(limits=limit_maps, ops=operations)
def test_accepted_requests_never_exceed_any_ancestor(
    limits: dict[str, Limits], ops: list[tuple[str, Usage, bool]]
) -> None:
    """Apply only what ``check`` accepts, with releases mixed in, in any order: no node goes
    over its limit, and a refused request would have put exactly the listed (node,
    dimension) pairs over."""
    allocations: list[tuple[str, Usage]] = []
    for project, request, release_one in ops:
        if release_one and allocations:
            allocations.pop(0)
        usage = subtree_usage(allocations)
        path = path_of(project)
        result = check(path, kinds_of(path), request, usage, limits)
        would_be = charge(usage, path, request)
        # only the path's nodes change, and only in the dimensions the request asks for
        expected = {(n, d) for n, d in over(would_be, limits) if n in path and request[d] > 0}
        assert {(v.node, v.dimension) for v in result.violations} == expected
        assert [v.node for v in result.violations] == sorted(
            (v.node for v in result.violations), key=path.index
        )
        if result.ok:
            allocations.append((project, request))
        assert over(subtree_usage(allocations), limits) == set()


@settings(max_examples=200, deadline=None)
@given(limits=limit_maps, ops=operations, project=st.sampled_from(PROJECTS), request=requests)
def test_headroom_agrees_with_check(
    limits: dict[str, Limits],
    ops: list[tuple[str, Usage, bool]],
    project: str,
    request: Usage,
) -> None:
    usage = subtree_usage([(p, r) for p, r, _ in ops])  # may start over some limits
    path = path_of(project)
    room = headroom(path, usage, limits)
    fits = all(
        room[d] is None or request[d] <= (room[d] or 0) for d in DIMENSIONS if request[d] > 0
    )
    assert check(path, kinds_of(path), request, usage, limits).ok == fits


@settings(max_examples=100, deadline=None)
@given(ops=operations, lowered=st.sampled_from(NODES), dim=st.sampled_from(QUOTA_DIMS))
def test_lowering_below_usage_blocks_and_flags(
    ops: list[tuple[str, Usage, bool]], lowered: str, dim: str
) -> None:
    usage = subtree_usage([(p, r) for p, r, _ in ops])
    used = usage[lowered][dim]
    if used == 0:
        return  # nothing in use there: a limit of 0 is not "below usage"
    limits = {lowered: Limits({dim: used - 1})}
    assert [(f.node, f.dimension, f.used) for f in over_limit(usage, limits)] == [
        (lowered, dim, used)
    ]
    for project in PROJECTS:
        path = path_of(project)
        blocked = not check(path, kinds_of(path), Usage({dim: 1}), usage, limits).ok
        assert blocked == (lowered in path)
        other = next(d for d in QUOTA_DIMS if d != dim)
        assert check(path, kinds_of(path), Usage({other: 1}), usage, limits).ok


@given(ops=operations, project=st.sampled_from(PROJECTS))
def test_unset_limits_accept_everything(ops: list[tuple[str, Usage, bool]], project: str) -> None:
    usage = subtree_usage([(p, r) for p, r, _ in ops])
    path = path_of(project)
    request = Usage.of(instances=10**6, vcpus=10**6)
    unset = {node: Limits.of(soft_threshold=0.5) for node in NODES}
    assert check(path, kinds_of(path), request, usage, unset).ok
    assert check(path, kinds_of(path), request, usage, {}).ok
    assert set(headroom(path, usage, unset).values()) == {None}
