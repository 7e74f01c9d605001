"""Hierarchical quota check: limits per organisation node and the ``check`` that applies them.

This module owns the quota rules, as pure functions over immutable values:

* A request counts against its project and every ancestor up to the root; ``usage[node]``
  is the total of the node's whole subtree, and ``limits[node]`` caps that total. Child
  limits may add up to more than the parent's: the parent still caps the sum.
* A dimension without a limit at a level (absent, or ``None``) is unlimited at that level.
* A request is refused in a dimension it asks for (amount > 0) when, at any level,
  ``used + requested > limit``; exactly reaching the limit is allowed. Dimensions the
  request does not ask for are never the reason for a refusal, so a limit lowered below
  the current usage blocks new usage of that dimension only; ``over_limit`` flags it.
* A soft threshold per node (a fraction of each limit, default 0.8) only warns.

What counts as usage (for instance whether stopped VMs hold their ``instances`` and
``vcpus``) is the caller's decision: the engine only adds up what it is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from quotas.vector import DIMENSIONS, Usage, check_amount, check_dimension

#: Default soft threshold: warn at 80% of a limit.
DEFAULT_SOFT_THRESHOLD = 0.8

_ORDER = {d: i for i, d in enumerate(DIMENSIONS)}
_ZERO = Usage()


def threshold_problem(value: object) -> str | None:
    """Why ``value`` is not a soft threshold (a number in ``(0, 1]``), or ``None``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0 < value <= 1)
    ):
        return f"must be a number in (0, 1], got {value!r}"
    return None


def check_soft_threshold(value: object) -> float:
    """Return ``value`` as a float if it is a valid soft threshold, else raise ``ValueError``."""
    problem = threshold_problem(value)
    if problem:
        raise ValueError(f"soft_threshold {problem}")
    assert isinstance(value, int | float)
    return float(value)


@dataclass(frozen=True, slots=True, init=False)
class Limits:
    """The limits of one organisation node: dimension -> cap, absent = unlimited.

    ``Limits.of(vcpus=512, ram_mib=2 * 1024**2)``; a limit of 0 forbids the dimension.
    ``soft_threshold`` is the fraction of each limit at which usage starts to warn.
    """

    items: tuple[tuple[str, int], ...]
    soft_threshold: float

    def __init__(
        self,
        values: Mapping[str, int | None] | None = None,
        /,
        *,
        soft_threshold: float = DEFAULT_SOFT_THRESHOLD,
    ) -> None:
        pairs = [
            (check_dimension(d), check_amount(d, v))
            for d, v in (values or {}).items()
            if v is not None
        ]
        object.__setattr__(self, "items", tuple(sorted(pairs, key=lambda p: _ORDER[p[0]])))
        object.__setattr__(self, "soft_threshold", check_soft_threshold(soft_threshold))

    @classmethod
    def of(cls, soft_threshold: float = DEFAULT_SOFT_THRESHOLD, **caps: int | None) -> Limits:
        """Build from keyword caps: ``Limits.of(vcpus=512)``."""
        return cls(caps, soft_threshold=soft_threshold)

    def get(self, dimension: str) -> int | None:
        """The cap for ``dimension``, or ``None`` when unlimited."""
        check_dimension(dimension)
        for d, v in self.items:
            if d == dimension:
                return v
        return None

    def __iter__(self) -> Iterator[str]:
        """The limited dimensions, in display order."""
        return (d for d, _ in self.items)

    def as_dict(self) -> dict[str, int]:
        """The set caps as a new dict (unlimited dimensions absent)."""
        return dict(self.items)

    def merged(
        self, overrides: Mapping[str, int | None], soft_threshold: float | None = None
    ) -> Limits:
        """A copy with ``overrides`` applied (``None`` removes a cap)."""
        values: dict[str, int | None] = {**self.as_dict(), **overrides}
        threshold = self.soft_threshold if soft_threshold is None else soft_threshold
        return Limits(values, soft_threshold=threshold)

    def soft_reached(self, amount: int, limit: int) -> bool:
        """True when ``amount`` is at or above the soft threshold of ``limit`` (exact)."""
        return amount >= Fraction(str(self.soft_threshold)) * limit

    def __repr__(self) -> str:
        return f"Limits({self.as_dict()!r}, soft_threshold={self.soft_threshold!r})"


def _label(kind: str, node: str) -> str:
    return f"{kind} {node}" if kind else node


@dataclass(frozen=True, slots=True)
class Violation:
    """One exhausted dimension at one level of the path."""

    node: str
    kind: str
    dimension: str
    used: int
    requested: int
    limit: int

    @property
    def over_by(self) -> int:
        """How far the request would go past the limit."""
        return self.used + self.requested - self.limit

    @property
    def message(self) -> str:
        """E.g. ``ministry motc: vcpus 510 used + 4 requested > limit 512``."""
        return (
            f"{_label(self.kind, self.node)}: {self.dimension} {self.used} used"
            f" + {self.requested} requested > limit {self.limit}"
        )

    def to_dict(self) -> dict[str, str | int]:
        """Plain form for error ``details`` in API bodies."""
        return {
            "node": self.node,
            "kind": self.kind,
            "dimension": self.dimension,
            "used": self.used,
            "requested": self.requested,
            "limit": self.limit,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class SoftWarning:
    """A level at or above its soft threshold in one dimension (``requested`` may be 0).

    ``crossed`` is True when the request moves usage from below the threshold to at or
    above it: emit an event on crossing; a gauge can report every warning.
    """

    node: str
    kind: str
    dimension: str
    used: int
    requested: int
    limit: int
    threshold: float
    crossed: bool

    @property
    def message(self) -> str:
        """E.g. ``agency motc-thb: vcpus 100 used + 4 requested = 104 >= 80% of limit 128``."""
        total = self.used + self.requested
        amount = (
            f"{self.used} used + {self.requested} requested = {total}"
            if self.requested
            else f"{self.used} used"
        )
        return (
            f"{_label(self.kind, self.node)}: {self.dimension} {amount}"
            f" >= {self.threshold * 100:g}% of limit {self.limit}"
        )


@dataclass(frozen=True, slots=True)
class OverLimit:
    """A node whose usage is above its (lowered) limit: it takes no new usage there."""

    node: str
    kind: str
    dimension: str
    used: int
    limit: int

    @property
    def message(self) -> str:
        """E.g. ``ministry motc: vcpus 600 used > limit 512``."""
        where = _label(self.kind, self.node)
        return f"{where}: {self.dimension} {self.used} used > limit {self.limit}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one request: ``ok`` unless some level would go over a limit.

    ``violations`` lists every exhausted dimension at every level, root first, dimensions
    in display order. ``soft_warnings`` lists the (level, dimension) pairs within their
    limit but at or above the soft threshold once the request is added.
    """

    request: Usage
    violations: tuple[Violation, ...]
    soft_warnings: tuple[SoftWarning, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def message(self) -> str:
        """All violation messages joined by ``; `` (empty when ok)."""
        return "; ".join(v.message for v in self.violations)


def _check_path(path: Sequence[str], kinds: Sequence[str]) -> None:
    if not path:
        raise ValueError("path must name at least one node")
    if len(path) != len(kinds):
        raise ValueError(f"path has {len(path)} nodes but {len(kinds)} kinds")
    if len(set(path)) != len(path):
        raise ValueError(f"path repeats a node: {'/'.join(path)}")


def check(
    path: Sequence[str],
    kinds: Sequence[str],
    request: Usage,
    usage: Mapping[str, Usage],
    limits: Mapping[str, Limits],
) -> CheckResult:
    """Check ``request`` against every level of ``path`` (node codes, root first).

    ``kinds[i]`` names the level of ``path[i]`` in messages (``"ministry"``). ``usage``
    holds each node's subtree usage (absent = nothing used); ``limits`` each node's limits
    (absent = unlimited).
    """
    _check_path(path, kinds)
    violations: list[Violation] = []
    warnings: list[SoftWarning] = []
    for node, kind in zip(path, kinds, strict=True):
        node_limits = limits.get(node)
        if node_limits is None:
            continue
        used = usage.get(node, _ZERO)
        for dim, requested in request.items:
            cap = node_limits.get(dim)
            if cap is None:
                continue
            before = used[dim]
            after = before + requested
            if after > cap:
                violations.append(Violation(node, kind, dim, before, requested, cap))
            elif node_limits.soft_reached(after, cap):
                crossed = not node_limits.soft_reached(before, cap)
                threshold = node_limits.soft_threshold
                warnings.append(
                    SoftWarning(node, kind, dim, before, requested, cap, threshold, crossed)
                )
    return CheckResult(request, tuple(violations), tuple(warnings))


def _levels(
    usage: Mapping[str, Usage], limits: Mapping[str, Limits]
) -> Iterator[tuple[str, Limits, str, int, int]]:
    """(node, limits, dimension, used, cap) for every set cap, nodes sorted by code."""
    for node in sorted(limits):
        node_limits = limits[node]
        used = usage.get(node, _ZERO)
        for dim, cap in node_limits.items:
            yield node, node_limits, dim, used[dim], cap


def over_limit(
    usage: Mapping[str, Usage],
    limits: Mapping[str, Limits],
    kinds: Mapping[str, str] | None = None,
) -> tuple[OverLimit, ...]:
    """Every (node, dimension) whose usage is above its limit, e.g. after lowering it."""
    kinds = kinds or {}
    return tuple(
        OverLimit(node, kinds.get(node, ""), dim, used, cap)
        for node, _, dim, used, cap in _levels(usage, limits)
        if used > cap
    )


def over_soft_threshold(
    usage: Mapping[str, Usage],
    limits: Mapping[str, Limits],
    kinds: Mapping[str, str] | None = None,
) -> tuple[SoftWarning, ...]:
    """Every (node, dimension) at or above its soft threshold now (over-limit ones too)."""
    kinds = kinds or {}
    return tuple(
        SoftWarning(node, kinds.get(node, ""), dim, used, 0, cap, lim.soft_threshold, False)
        for node, lim, dim, used, cap in _levels(usage, limits)
        if lim.soft_reached(used, cap)
    )


def headroom(
    path: Sequence[str], usage: Mapping[str, Usage], limits: Mapping[str, Limits]
) -> dict[str, int | None]:
    """The most a single request at the end of ``path`` may take, per dimension.

    The smallest ``limit - used`` (floored at 0) over the levels, ``None`` when no level
    limits the dimension. ``check`` accepts a request exactly when each amount it asks
    for is at most this.
    """
    room: dict[str, int | None] = dict.fromkeys(DIMENSIONS)
    for node in path:
        node_limits = limits.get(node)
        if node_limits is None:
            continue
        used = usage.get(node, _ZERO)
        for dim, cap in node_limits.items:
            left = max(0, cap - used[dim])
            current = room[dim]
            room[dim] = left if current is None else min(current, left)
    return room


def charge(usage: Mapping[str, Usage], path: Sequence[str], amount: Usage) -> dict[str, Usage]:
    """New usage map with ``amount`` added at every node of ``path`` (the input is unchanged)."""
    out = dict(usage)
    for node in path:
        out[node] = out.get(node, _ZERO) + amount
    return out


def release(usage: Mapping[str, Usage], path: Sequence[str], amount: Usage) -> dict[str, Usage]:
    """New usage map with ``amount`` taken off every node of ``path``; raises if it underflows."""
    out = dict(usage)
    for node in path:
        out[node] = out.get(node, _ZERO) - amount
    return out
