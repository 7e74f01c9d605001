"""Scores: how feasible hosts are ranked, as small named units.

A host's rank is a tuple compared lexicographically, smallest first:
``(group preference, policy key, policy key, seeded tie-break, name)``. The soft group
rules come first (honoured whenever some host allows it), then the policy, then a
pseudo-random but seeded tie-break (a seeded shuffle among equals, independent of input
order, so a decision can be replayed), then the host name (a total order).

Every key has two forms side by side: the readable per-host function (``spread``,
``pack``, ``group_preference``, ``tiebreak``, combined by :func:`rank`) and its vectorised
form over the hosts of a :class:`~controlplane.scheduler.fleet.Fleet` at given positions
(``spread_columns``, ...), which does the same float64 operations in the same order, so the
values are bit-identical (a property test holds them equal). A decision ranks every
feasible host with the vectorised forms, then re-ranks only the host it claims, with
:func:`rank`.

Adding a policy means one :class:`Policy` (both forms) in :data:`POLICIES`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler.context import Context
from controlplane.scheduler.fleet import Fleet, Positions
from controlplane.scheduler.fleet import at as columns_at
from controlplane.scheduler.view import HostView

Rank = tuple[float, float, float, int, str]
Floats = NDArray[np.float64]
_NONE = (0, 0, 0)


def free_fraction_after(host: HostView, ctx: Context) -> float:
    """The tightest dimension's free fraction left after one more claim (at most 1)."""
    c = ctx.claimed.get(host.id, _NONE)
    least = 1.0
    usable = host.usable_vcpus
    if usable > 0:
        least = (usable - host.used_vcpus - c[0] - ctx.vcpus) / usable
    usable = host.usable_ram_mib
    if usable > 0:
        x = (usable - host.used_ram_mib - c[1] - ctx.ram_mib) / usable
        if x < least:
            least = x
    usable = host.usable_disk_gib
    if usable > 0:
        x = (usable - host.used_disk_gib - c[2] - ctx.disk_gib) / usable
        if x < least:
            least = x
    return least


def free_fraction_after_columns(fleet: Fleet, ctx: Context, at: Positions) -> Floats:
    """:func:`free_fraction_after` of the hosts at positions ``at``."""
    usable = columns_at(fleet.usable, at)
    left = usable - columns_at(ctx.used_columns(fleet), at) - ctx.demand()
    has = usable > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = left / usable
    least = np.where(has[0], fraction[0], 1.0)
    for row in (1, 2):
        x = fraction[row]
        least = np.where(has[row] & (x < least), x, least)
    return least


def spread(host: HostView, ctx: Context) -> tuple[float, float]:
    """Balance load: the host with the most room left (tightest dimension) first."""
    return (0.0, -free_fraction_after(host, ctx))


def spread_columns(fleet: Fleet, ctx: Context, at: Positions) -> tuple[Floats, Floats]:
    """:func:`spread` of the hosts at positions ``at``."""
    return np.zeros(len(at)), -free_fraction_after_columns(fleet, ctx, at)


def pack(host: HostView, ctx: Context) -> tuple[float, float]:
    """Fill the fewest hosts: hosts already in use first, tightest fit first; then the
    empty host that holds the most copies of the request (greedy, which for identical
    instances opens the fewest hosts)."""
    if ctx.in_use(host):
        return (0.0, free_fraction_after(host, ctx))
    return (1.0, -float(ctx.copies(host)))


def pack_columns(fleet: Fleet, ctx: Context, at: Positions) -> tuple[Floats, Floats]:
    """:func:`pack` of the hosts at positions ``at``."""
    in_use = columns_at(fleet.used, at).any(axis=0)
    if ctx.claimed:
        in_use |= ctx.claimed_columns(fleet)[at]
    tightest = free_fraction_after_columns(fleet, ctx, at)
    copies = ctx.copies_columns(fleet, at).astype(np.float64)
    return np.where(in_use, 0.0, 1.0), np.where(in_use, tightest, -copies)


@dataclass(frozen=True, slots=True)
class Policy:
    """A placement policy's two keys: per host, and for hosts at positions of a fleet."""

    key: Callable[[HostView, Context], tuple[float, float]]
    columns: Callable[[Fleet, Context, Positions], tuple[Floats, Floats]]


POLICIES: dict[PlacementPolicy, Policy] = {
    PlacementPolicy.SPREAD: Policy(spread, spread_columns),
    PlacementPolicy.PACK: Policy(pack, pack_columns),
}

#: Group rules that change the ranking (the others only filter).
RANKING_RULES = frozenset(
    {GroupPolicy.SOFT_AFFINITY, GroupPolicy.SOFT_ANTI_AFFINITY, GroupPolicy.AFFINITY}
)


def group_preference(host: HostView, ctx: Context, remaining: int) -> float:
    """Soft rules (and hard affinity for a multi-instance request): smaller is better."""
    policy = ctx.group_policy
    if policy is GroupPolicy.SOFT_ANTI_AFFINITY:
        return float(ctx.members.get(host.id, 0))
    if policy is GroupPolicy.SOFT_AFFINITY:
        return -float(ctx.members.get(host.id, 0))
    if policy is GroupPolicy.AFFINITY and remaining > 1 and ctx.total_members == 0:
        return 0.0 if ctx.copies(host) >= remaining else 1.0  # a host for all of them
    return 0.0


def group_preference_columns(fleet: Fleet, ctx: Context, at: Positions, remaining: int) -> Floats:
    """:func:`group_preference` of the hosts at positions ``at``."""
    policy = ctx.group_policy
    if policy is GroupPolicy.SOFT_ANTI_AFFINITY:
        return ctx.member_columns(fleet)[at].astype(np.float64)
    if policy is GroupPolicy.SOFT_AFFINITY:
        return -ctx.member_columns(fleet)[at].astype(np.float64)
    if policy is GroupPolicy.AFFINITY and remaining > 1 and ctx.total_members == 0:
        return np.where(ctx.copies_columns(fleet, at) >= remaining, 0.0, 1.0)
    return np.zeros(len(at))


def tiebreak(host: HostView, seed: int) -> int:
    """A seeded pseudo-random key per host (replayable across processes and input order)."""
    return zlib.crc32(host.name.encode(), seed & 0xFFFFFFFF)


def rank(host: HostView, ctx: Context, policy: PlacementPolicy, seed: int, remaining: int) -> Rank:
    """The host's full rank (smallest is chosen)."""
    first, second = POLICIES[policy].key(host, ctx)
    preference = (
        group_preference(host, ctx, remaining) if ctx.group_policy in RANKING_RULES else 0.0
    )
    return (preference, first, second, tiebreak(host, seed), host.name)


def rank_columns(
    fleet: Fleet, ctx: Context, policy: PlacementPolicy, remaining: int, at: Positions
) -> tuple[Floats, Floats, Floats]:
    """The float keys of :func:`rank` (preference, policy keys) for the hosts at ``at``;
    the tie-break is ``fleet.tiebreak(seed)`` and the name comes last."""
    first, second = POLICIES[policy].columns(fleet, ctx, at)
    if ctx.group_policy in RANKING_RULES:
        preference = group_preference_columns(fleet, ctx, at, remaining)
    else:
        preference = np.zeros(len(at))
    return preference, first, second


def rank_all(
    hosts: list[HostView], ctx: Context, policy: PlacementPolicy, seed: int, remaining: int
) -> list[tuple[Rank, int]]:
    """``(rank, index)`` of every host, equal to :func:`rank`, computed with the vectorised
    keys (tools and tests; a decision keeps the columns)."""
    fleet = Fleet.of(hosts)
    at = np.arange(len(hosts))
    preference, first, second = rank_columns(fleet, ctx, policy, remaining, at)
    tiebreaks = fleet.tiebreak(seed).tolist()
    return [
        ((p, a, b, t, h.name), i)
        for i, (h, p, a, b, t) in enumerate(
            zip(hosts, preference.tolist(), first.tolist(), second.tolist(), tiebreaks, strict=True)
        )
    ]
