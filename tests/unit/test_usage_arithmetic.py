"""``Usage`` arithmetic (``+``, ``-``, ``*``) builds its result with the fast
``Usage._known`` constructor: the result must equal, hash and iterate exactly like the
vector built the slow, fully validated way (``Usage(dict)``), and keep the bound and the
no-negative rule (Hypothesis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from quotas import Usage
from quotas.vector import DIMENSIONS, MAX_AMOUNT

#: Amounts near zero and near the bound, where zeros are dropped and the bound binds.
amounts = st.one_of(st.integers(0, 5), st.integers(0, MAX_AMOUNT), st.just(MAX_AMOUNT))
#: Random valid vectors given as plain dicts, in any key order, zeros included.
dicts = st.dictionaries(st.sampled_from(DIMENSIONS), amounts)
counts = st.one_of(st.integers(0, 3), st.integers(0, MAX_AMOUNT))


def slow(amounts: dict[str, int]) -> Usage:
    """The fully validated constructor, from a shuffled copy (key order must not matter)."""
    return Usage(dict(reversed(list(amounts.items()))))


def assert_canonical(result: Usage, expected: dict[str, int]) -> None:
    """``result`` is the vector of ``expected`` exactly as ``Usage(dict)`` builds it."""
    built = slow(expected)
    assert result == built
    assert hash(result) == hash(built)
    assert result.items == built.items
    assert [d for d, _ in result.items] == [d for d in DIMENSIONS if expected.get(d)]
    assert all(v > 0 for _, v in result.items), "zeros are dropped"
    assert result.as_dict() == {d: v for d, v in expected.items() if v}


def combined(a: dict[str, int], b: dict[str, int], op: Callable[[int, int], int]) -> dict[str, int]:
    """``op`` of the two amounts, dimension by dimension (absent: 0)."""
    return {d: op(a.get(d, 0), b.get(d, 0)) for d in DIMENSIONS}


@given(dicts, dicts)
def test_sum_equals_the_slow_vector_or_raises_above_the_bound(
    a: dict[str, int], b: dict[str, int]
) -> None:
    expected = combined(a, b, int.__add__)
    if max(expected.values()) > MAX_AMOUNT:
        with pytest.raises(ValueError, match=f"at most {MAX_AMOUNT}"):
            Usage(a) + Usage(b)
        return
    assert_canonical(Usage(a) + Usage(b), expected)


@given(dicts, dicts)
def test_difference_equals_the_slow_vector_when_it_stays_non_negative(
    a: dict[str, int], b: dict[str, int]
) -> None:
    big = combined(a, b, max)  # b <= big: the difference is defined
    assert Usage(b) <= Usage(big)
    assert_canonical(Usage(big) - Usage(b), combined(big, b, int.__sub__))
    assert_canonical(Usage(big) - Usage(big), {})


@given(dicts, dicts)
def test_difference_below_zero_still_raises(a: dict[str, int], b: dict[str, int]) -> None:
    assume(not Usage(b) <= Usage(a))
    short = Usage(b).above(Usage(a))[0]
    with pytest.raises(ValueError, match=f"cannot release {b[short]} {short}"):
        Usage(a) - Usage(b)


def multiply(usage: Usage, k: int, left: bool) -> Usage:
    """``usage * k``, or ``k * usage``."""
    return usage * k if left else k * usage


@given(dicts, counts)
def test_multiple_equals_the_slow_vector_or_raises_above_the_bound(
    a: dict[str, int], k: int
) -> None:
    expected = {d: v * k for d, v in a.items()}
    for left in (True, False):
        if expected and max(expected.values()) > MAX_AMOUNT:
            with pytest.raises(ValueError, match=f"at most {MAX_AMOUNT}"):
                multiply(Usage(a), k, left)
        else:
            assert_canonical(multiply(Usage(a), k, left), expected)


@pytest.mark.parametrize("count", [-1, True, MAX_AMOUNT + 1])
def test_multiplying_by_an_invalid_count_raises(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        Usage.of(vcpus=1) * count


def test_results_are_usable_like_any_vector() -> None:
    total = Usage.of(vcpus=2, ram_mib=1024) + Usage.of(instances=1, vcpus=0)
    assert total["vcpus"] == 2
    assert total["disk_gib"] == 0
    assert list(total) == ["instances", "vcpus", "ram_mib"]
    assert {total, Usage(ram_mib=1024, instances=1, vcpus=2)} == {total}
    assert repr(total) == "Usage(instances=1, vcpus=2, ram_mib=1024)"
    assert not (total - total)
    with pytest.raises(ValueError, match="unknown dimension"):
        total["nope"]
