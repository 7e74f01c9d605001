"""Multi-dimensional bin packing of workloads onto identical hosts, and its lower bound.

Items and the host capacity are integer vectors of the same length (vCPU, RAM MiB, disk
GiB, and for sizing also measured load). :func:`pack` runs first-fit and best-fit
*decreasing* under two orderings (by dominant share, the largest fraction of a host an
item takes in any dimension, and by the sum of its shares), keeps the packing with the
fewest hosts, then improves it locally: it repeatedly tries to empty the least-filled host
by moving its items, largest first, into the tightest other host they fit (best fit), and
drops the host when that succeeds. No host ever exceeds the capacity in any dimension.

:func:`lower_bound` is the bound no packing can beat: the largest, over dimensions, of
``ceil(total demand / host capacity)`` (and of the count of items bigger than half a host
in that dimension, which cannot share). Everything is deterministic (ties go to the lower
index), so the same input gives the same packing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import ge

Vector = tuple[int, ...]

#: How many of the least-filled hosts the improvement pass tries to empty per round.
IMPROVE_CANDIDATES = 8
#: Upper bound on improvement rounds (each round that succeeds removes one host).
IMPROVE_ROUNDS = 10_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fits(item: Sequence[int], capacity: Sequence[int]) -> bool:
    """Whether ``item`` fits into an empty host of ``capacity``."""
    return all(s <= c for s, c in zip(item, capacity, strict=True))


def lower_bound(items: Sequence[Sequence[int]], capacity: Sequence[int]) -> int:
    """No packing uses fewer hosts than this: the largest, over dimensions d, of
    ``ceil(sum of item[d] / capacity[d])`` and of the number of items taking more than
    half of ``capacity[d]`` (no two of those can share a host).

    A dimension with zero capacity must have zero demand (else :class:`ValueError`)."""
    best = 0
    for d, cap in enumerate(capacity):
        total = sum(item[d] for item in items)
        if cap <= 0:
            if total > 0:
                raise ValueError(f"dimension {d} has demand {total} but zero capacity")
            continue
        big = sum(1 for item in items if 2 * item[d] > cap)
        best = max(best, _ceil_div(total, cap), big)
    return best


@dataclass(frozen=True)
class Packing:
    """Which items went onto which host, and how full each host is."""

    capacity: Vector
    #: Item indices per host (each item exactly once).
    bins: tuple[tuple[int, ...], ...]
    #: Sum of the items' vectors per host (never above ``capacity``).
    loads: tuple[Vector, ...]
    lower_bound: int
    #: Which heuristic gave the kept packing, e.g. ``best-fit/dominant+improve``.
    method: str

    @property
    def hosts(self) -> int:
        """Hosts used."""
        return len(self.bins)


class _Bins:
    """Mutable working state: remaining capacity and items per open host."""

    def __init__(self, capacity: Vector) -> None:
        self.capacity = capacity
        self.rem: list[list[int]] = []
        self.items: list[list[int]] = []

    def open(self) -> int:
        self.rem.append(list(self.capacity))
        self.items.append([])
        return len(self.rem) - 1

    def put(self, b: int, index: int, item: Vector) -> None:
        rem = self.rem[b]
        for d, s in enumerate(item):
            rem[d] -= s
        self.items[b].append(index)

    def take(self, b: int, index: int, item: Vector) -> None:
        rem = self.rem[b]
        for d, s in enumerate(item):
            rem[d] += s
        self.items[b].remove(index)


def _first_index(rem: Sequence[Sequence[int]], item: Vector) -> int:
    """The first host with room for ``item``, or -1 (three dimensions unrolled: hot loop)."""
    if len(item) == 3:
        a, b, c = item
        for i, r in enumerate(rem):
            if r[0] >= a and r[1] >= b and r[2] >= c:
                return i
        return -1
    for i, r in enumerate(rem):
        if all(map(ge, r, item)):
            return i
    return -1


def _best_index(
    rem: Sequence[Sequence[int]], item: Vector, weights: Sequence[float], exclude: int = -1
) -> int:
    """The host with room for ``item`` that is left with the least weighted spare room,
    or -1; never ``exclude``."""
    best, best_slack = -1, 0.0
    if len(item) == 3:
        a, b, c = item
        wa, wb, wc = weights
        for i, r in enumerate(rem):
            if r[0] >= a and r[1] >= b and r[2] >= c and i != exclude:
                slack = (r[0] - a) * wa + (r[1] - b) * wb + (r[2] - c) * wc
                if best < 0 or slack < best_slack:
                    best, best_slack = i, slack
        return best
    for i, r in enumerate(rem):
        if i != exclude and all(map(ge, r, item)):
            slack = sum((x - s) * w for x, s, w in zip(r, item, weights, strict=True))
            if best < 0 or slack < best_slack:
                best, best_slack = i, slack
    return best


def _first_fit(order: Sequence[int], items: Sequence[Vector], capacity: Vector) -> _Bins:
    bins = _Bins(capacity)
    for index in order:
        item = items[index]
        b = _first_index(bins.rem, item)
        bins.put(bins.open() if b < 0 else b, index, item)
    return bins


def _best_fit(
    order: Sequence[int], items: Sequence[Vector], capacity: Vector, weights: Sequence[float]
) -> _Bins:
    bins = _Bins(capacity)
    for index in order:
        item = items[index]
        b = _best_index(bins.rem, item, weights)
        bins.put(bins.open() if b < 0 else b, index, item)
    return bins


def _fill(load: Sequence[int], weights: Sequence[float]) -> float:
    return max((load[d] * w for d, w in enumerate(weights)), default=0.0)


def _improve(bins: _Bins, items: Sequence[Vector], weights: Sequence[float], floor: int) -> bool:
    """Empty least-filled hosts into the others where every item finds room; returns
    whether any host was removed. Stops at ``floor`` hosts (the lower bound)."""
    capacity = bins.capacity
    dims = range(len(capacity))
    improved = False
    for _round in range(IMPROVE_ROUNDS):
        if len(bins.rem) <= floor:
            break
        used = [[c - r for c, r in zip(capacity, rem, strict=True)] for rem in bins.rem]
        spare = [sum(rem[d] for rem in bins.rem) for d in dims]
        order = sorted(range(len(bins.rem)), key=lambda b: (_fill(used[b], weights), b))
        removed = False
        for victim in order[:IMPROVE_CANDIDATES]:
            # Cheap necessary condition: the others' spare room must cover its load.
            if any(used[victim][d] > spare[d] - bins.rem[victim][d] for d in dims):
                continue
            moves: list[tuple[int, int]] = []
            members = sorted(
                bins.items[victim],
                key=lambda i: (-_fill(items[i], weights), i),
            )
            for index in members:
                item = items[index]
                best = _best_index(bins.rem, item, weights, exclude=victim)
                if best < 0:
                    break
                bins.take(victim, index, item)
                bins.put(best, index, item)
                moves.append((index, best))
            if not bins.items[victim]:
                del bins.rem[victim]
                del bins.items[victim]
                removed = improved = True
                break
            for index, b in reversed(moves):  # roll back: this host stays
                bins.take(b, index, items[index])
                bins.put(victim, index, items[index])
        if not removed:
            break
    return improved


def pack(
    items: Sequence[Sequence[int]], capacity: Sequence[int], *, improve: bool = True
) -> Packing:
    """Pack ``items`` onto as few hosts of ``capacity`` as the heuristics find.

    Every item must fit an empty host (:func:`fits`), else :class:`ValueError`."""
    cap: Vector = tuple(int(c) for c in capacity)
    vectors: list[Vector] = [tuple(int(s) for s in item) for item in items]
    for i, item in enumerate(vectors):
        if len(item) != len(cap):
            raise ValueError(f"item {i} has {len(item)} dimensions, the host {len(cap)}")
        if any(s < 0 for s in item):
            raise ValueError(f"item {i} has a negative size: {item}")
        if not fits(item, cap):
            raise ValueError(f"item {i} {item} does not fit an empty host {cap}")
    bound = lower_bound(vectors, cap)
    weights = [1.0 / c if c > 0 else 0.0 for c in cap]

    def dominant(i: int) -> tuple[float, float, int]:
        shares = [s * w for s, w in zip(vectors[i], weights, strict=True)]
        return (-max(shares, default=0.0), -sum(shares), i)

    def total(i: int) -> tuple[float, float, int]:
        shares = [s * w for s, w in zip(vectors[i], weights, strict=True)]
        return (-sum(shares), -max(shares, default=0.0), i)

    orderings: list[tuple[str, Callable[[int], tuple[float, float, int]]]] = [
        ("dominant", dominant),
        ("sum", total),
    ]
    best: _Bins | None = None
    method = ""
    for name, key in orderings:
        order = sorted(range(len(vectors)), key=key)
        for rule, bins in (
            ("first-fit", _first_fit(order, vectors, cap)),
            ("best-fit", _best_fit(order, vectors, cap, weights)),
        ):
            if best is None or len(bins.rem) < len(best.rem):
                best, method = bins, f"{rule}/{name}"
            if len(best.rem) <= bound:
                break
        if best is not None and len(best.rem) <= bound:
            break
    assert best is not None or not vectors
    if best is None:
        return Packing(cap, (), (), bound, "empty")
    if improve and len(best.rem) > bound and _improve(best, vectors, weights, bound):
        method += "+improve"
    loads = tuple(tuple(c - r for c, r in zip(cap, rem, strict=True)) for rem in best.rem)
    return Packing(cap, tuple(tuple(sorted(b)) for b in best.items), loads, bound, method)
