"""Resource vectors over named quota dimensions.

This module owns the list of quota dimensions and ``Usage``, an immutable amount per
dimension (instances, vCPU, RAM MiB, disk GiB, trial environments, ...). A new dimension is
one more entry in ``DIMENSIONS``; nothing else in the engine names a dimension.

Amounts are never negative. Absent dimensions are zero, and zeros are not stored, so two
vectors with the same amounts compare and hash equal however they were built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

#: Known dimensions, in display order. Add a dimension here to make it countable.
DIMENSIONS: tuple[str, ...] = ("instances", "vcpus", "ram_mib", "disk_gib", "trial_envs")

#: Units for messages and CLI tables.
UNITS: dict[str, str] = {
    "instances": "instances",
    "vcpus": "vCPU",
    "ram_mib": "MiB RAM",
    "disk_gib": "GiB disk",
    "trial_envs": "trial environments",
}

#: Largest amount a dimension may hold: fits a signed 64-bit column and a float exactly.
MAX_AMOUNT = 10**15

_ORDER = {d: i for i, d in enumerate(DIMENSIONS)}


def dimension_problem(name: object) -> str | None:
    """Why ``name`` is not a known dimension, or ``None`` when it is one."""
    if isinstance(name, str) and name in _ORDER:
        return None
    return f"unknown dimension {name!r} (known: {', '.join(DIMENSIONS)})"


def amount_problem(value: object) -> str | None:
    """Why ``value`` is not an amount (an int in ``0..MAX_AMOUNT``, not a bool), or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be a non-negative integer, got {value!r}"
    if value > MAX_AMOUNT:
        return f"must be at most {MAX_AMOUNT}, got {value}"
    return None


def check_dimension(name: str) -> str:
    """Return ``name`` if it is a known dimension, else raise ``ValueError`` listing them."""
    problem = dimension_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def check_amount(dimension: str, value: object) -> int:
    """Return ``value`` if it is a valid amount, else raise ``ValueError`` naming ``dimension``."""
    problem = amount_problem(value)
    if problem:
        raise ValueError(f"{dimension} {problem}")
    assert isinstance(value, int)
    return value


def canonical(items: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Validated ``(dimension, amount)`` pairs in ``DIMENSIONS`` order, zeros dropped."""
    pairs = [(check_dimension(d), check_amount(d, v)) for d, v in items.items()]
    return tuple(sorted(((d, v) for d, v in pairs if v), key=lambda p: _ORDER[p[0]]))


@dataclass(frozen=True, slots=True, init=False)
class Usage:
    """An amount per dimension, e.g. ``Usage.of(instances=1, vcpus=4, ram_mib=8192)``.

    Supports ``+`` and ``-`` (subtraction below zero raises: releasing more than was
    charged is a bookkeeping bug), ``*`` by a non-negative int, ``u[dim]`` (0 when absent)
    and per-dimension comparison: ``a <= b`` holds when every dimension of ``a`` is at
    most that of ``b`` (a partial order: neither ``a <= b`` nor ``b <= a`` may hold).
    """

    items: tuple[tuple[str, int], ...]

    def __init__(self, amounts: Mapping[str, int] | None = None, /, **kwargs: int) -> None:
        merged = dict(amounts or {})
        for d, v in kwargs.items():
            if d in merged:
                raise ValueError(f"dimension {d!r} given twice")
            merged[d] = v
        object.__setattr__(self, "items", canonical(merged))

    @classmethod
    def _known(cls, amounts: Mapping[str, int]) -> Usage:
        """Build from amounts of known dimensions that are non-negative ints (sums,
        differences and multiples of valid vectors): only the bound is checked. Arithmetic
        is on every quota charge's path, and full validation cost more than the check."""
        for d, v in amounts.items():
            if v > MAX_AMOUNT:
                raise ValueError(f"{d} must be at most {MAX_AMOUNT}, got {v}")
        usage = object.__new__(cls)
        kept = sorted(((d, v) for d, v in amounts.items() if v), key=lambda p: _ORDER[p[0]])
        object.__setattr__(usage, "items", tuple(kept))
        return usage

    @classmethod
    def of(cls, **amounts: int) -> Usage:
        """Build from keyword amounts: ``Usage.of(vcpus=4)``."""
        return cls(amounts)

    @classmethod
    def zero(cls) -> Usage:
        """The empty vector."""
        return cls()

    def __getitem__(self, dimension: str) -> int:
        check_dimension(dimension)
        for d, v in self.items:
            if d == dimension:
                return v
        return 0

    def __iter__(self) -> Iterator[str]:
        """Dimensions with a non-zero amount, in display order."""
        return (d for d, _ in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def as_dict(self) -> dict[str, int]:
        """Non-zero amounts as a new dict (for JSON bodies and store rows)."""
        return dict(self.items)

    def __add__(self, other: Usage) -> Usage:
        out = self.as_dict()
        for d, v in other.items:
            out[d] = out.get(d, 0) + v
        return Usage._known(out)

    def __sub__(self, other: Usage) -> Usage:
        out = self.as_dict()
        for d, v in other.items:
            left = out.get(d, 0) - v
            if left < 0:
                raise ValueError(f"cannot release {v} {d}: only {out.get(d, 0)} held")
            out[d] = left
        return Usage._known(out)

    def __mul__(self, count: int) -> Usage:
        check_amount("count", count)
        return Usage._known({d: v * count for d, v in self.items})

    __rmul__ = __mul__

    def __le__(self, other: Usage) -> bool:
        return not self.above(other)

    def __ge__(self, other: Usage) -> bool:
        return not other.above(self)

    def above(self, other: Usage) -> tuple[str, ...]:
        """Dimensions where ``self`` exceeds ``other``, in display order."""
        return tuple(d for d, v in self.items if v > other[d])

    def describe(self) -> str:
        """Human form, e.g. ``1 instances, 4 vCPU, 8192 MiB RAM`` (``nothing`` if empty)."""
        return ", ".join(f"{v} {UNITS[d]}" for d, v in self.items) or "nothing"

    def __repr__(self) -> str:
        return f"Usage({', '.join(f'{d}={v}' for d, v in self.items)})"
