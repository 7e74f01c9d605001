"""Scores: how feasible hosts are ranked, as small named units.

A host's rank is a tuple compared lexicographically, smallest first:
``(group preference, policy key, policy key, seeded tie-break, name)``. The soft group
rules come first (honoured whenever some host allows it), then the policy, then a
pseudo-random but seeded tie-break (a seeded shuffle among equals, independent of input
order, so a decision can be replayed), then the host name (a total order).

Adding a policy means one function ``(host, ctx) -> (float, float)`` in :data:`POLICIES`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler.context import Context
from controlplane.scheduler.view import HostView

Rank = tuple[float, float, float, int, str]
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


def spread(host: HostView, ctx: Context) -> tuple[float, float]:
    """Balance load: the host with the most room left (tightest dimension) first."""
    return (0.0, -free_fraction_after(host, ctx))


def pack(host: HostView, ctx: Context) -> tuple[float, float]:
    """Fill the fewest hosts: hosts already in use first, tightest fit first; then the
    empty host that holds the most copies of the request (greedy, which for identical
    instances opens the fewest hosts)."""
    if ctx.in_use(host):
        return (0.0, free_fraction_after(host, ctx))
    return (1.0, -float(ctx.copies(host)))


POLICIES: dict[PlacementPolicy, Callable[[HostView, Context], tuple[float, float]]] = {
    PlacementPolicy.SPREAD: spread,
    PlacementPolicy.PACK: pack,
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


def tiebreak(host: HostView, seed: int) -> int:
    """A seeded pseudo-random key per host (replayable across processes and input order)."""
    return zlib.crc32(host.name.encode(), seed & 0xFFFFFFFF)


def rank(host: HostView, ctx: Context, policy: PlacementPolicy, seed: int, remaining: int) -> Rank:
    """The host's full rank (smallest is chosen)."""
    first, second = POLICIES[policy](host, ctx)
    preference = (
        group_preference(host, ctx, remaining) if ctx.group_policy in RANKING_RULES else 0.0
    )
    return (preference, first, second, tiebreak(host, seed), host.name)


def rank_all(
    hosts: list[HostView], ctx: Context, policy: PlacementPolicy, seed: int, remaining: int
) -> list[tuple[Rank, int]]:
    """``(rank, index)`` of every host, equal to :func:`rank` but with the lookups hoisted
    out of the loop (this runs once per host of the fleet, before anything is claimed)."""
    mask = seed & 0xFFFFFFFF
    crc = zlib.crc32
    if ctx.group_policy in RANKING_RULES or policy is not PlacementPolicy.SPREAD or ctx.claimed:
        key = POLICIES[policy]
        ranked = ctx.group_policy in RANKING_RULES
        return [
            (
                (
                    group_preference(h, ctx, remaining) if ranked else 0.0,
                    *key(h, ctx),
                    crc(h.name.encode(), mask),
                    h.name,
                ),
                i,
            )
            for i, h in enumerate(hosts)
        ]
    # spread with nothing claimed yet: free_fraction_after inlined (same arithmetic)
    dv, dr, dd = ctx.vcpus, ctx.ram_mib, ctx.disk_gib
    out: list[tuple[Rank, int]] = []
    for i, h in enumerate(hosts):
        least = 1.0
        usable = h.usable_vcpus
        if usable > 0:
            least = (usable - h.used_vcpus - 0 - dv) / usable
        usable = h.usable_ram_mib
        if usable > 0:
            x = (usable - h.used_ram_mib - 0 - dr) / usable
            if x < least:
                least = x
        usable = h.usable_disk_gib
        if usable > 0:
            x = (usable - h.used_disk_gib - 0 - dd) / usable
            if x < least:
                least = x
        out.append(((0.0, 0.0, -least, crc(h.name.encode(), mask), h.name), i))
    return out
