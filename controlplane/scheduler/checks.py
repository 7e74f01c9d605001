"""Feasibility checks, in cost order, as small named units.

Each :class:`Check` has three forms of one rule: ``rejects(host, ctx)``, the readable
per-host definition (also used to re-check the one host a multi-instance decision just
claimed); ``mask(fleet, ctx)``, the same rule over a whole
:class:`~controlplane.scheduler.fleet.Fleet` as a boolean numpy array of rejected hosts
(what a decision runs; property tests hold it equal to ``rejects``); and
``reason(host, ctx)``, formatted only for the few hosts kept as examples in an
explanation. Adding a check means writing one ``Check`` here and adding it to
:data:`CHECKS` at its cost rank.

Checks that read this decision's own claims (:data:`DYNAMIC`) must be monotone: once a
host fails, further claims elsewhere in the same decision never make it pass again (the
selection relies on it to drop such hosts all at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controlplane.domain.resources import DIMENSIONS, UNITS
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler.context import Context
from controlplane.scheduler.fleet import Bools, Fleet
from controlplane.scheduler.view import SCHEDULABLE, HostView


@dataclass(frozen=True, slots=True)
class Check:
    """One named feasibility rule."""

    name: str
    rejects: Callable[[HostView, Context], bool]
    reason: Callable[[HostView, Context], str]
    #: ``rejects`` for every host of a fleet at once.
    mask: Callable[[Fleet, Context], Bools]
    #: Whether the check can reject anything for this request (skipped when not).
    applies: Callable[[Context], bool] = lambda _ctx: True

    def __call__(self, host: HostView, ctx: Context) -> str | None:
        """The reason ``host`` is rejected, or None if it passes."""
        return self.reason(host, ctx) if self.rejects(host, ctx) else None


# -- host_state: only schedulable hosts in active data centres --------------------------------


def _state_rejects(host: HostView, _ctx: Context) -> bool:
    return host.state not in SCHEDULABLE or not host.datacentre_active


def _state_reason(host: HostView, _ctx: Context) -> str:
    if host.state not in SCHEDULABLE:
        return f"host is {host.state}"
    return f"data centre {host.datacentre} is not active"


def _state_mask(fleet: Fleet, _ctx: Context) -> Bools:
    return ~fleet.placeable


host_state = Check("host_state", _state_rejects, _state_reason, _state_mask)


# -- datacentre: honour the requested data centre ---------------------------------------------


def _dc_rejects(host: HostView, ctx: Context) -> bool:
    return ctx.datacentre is not None and host.datacentre != ctx.datacentre


def _dc_reason(host: HostView, ctx: Context) -> str:
    return f"in data centre {host.datacentre}, not {ctx.datacentre}"


def _dc_mask(fleet: Fleet, ctx: Context) -> Bools:
    code = None if ctx.datacentre is None else fleet.datacentre_code(ctx.datacentre)
    if code is None:
        return np.full(len(fleet), ctx.datacentre is not None)
    return np.not_equal(fleet.datacentre, code)


datacentre = Check(
    "datacentre", _dc_rejects, _dc_reason, _dc_mask, lambda ctx: ctx.datacentre is not None
)


# -- traits: required present, forbidden absent -----------------------------------------------


def _lacks(traits: frozenset[str], ctx: Context) -> bool:
    return bool(ctx.required and not ctx.required <= traits) or bool(
        ctx.forbidden and not ctx.forbidden.isdisjoint(traits)
    )


def _traits_rejects(host: HostView, ctx: Context) -> bool:
    return _lacks(host.traits, ctx)


def _traits_mask(fleet: Fleet, ctx: Context) -> Bools:
    # decided once per distinct trait set, then looked up per host
    table = np.array([_lacks(t, ctx) for t in fleet.trait_sets], np.bool_)
    if not len(table):
        return np.zeros(len(fleet), np.bool_)
    return table[fleet.traits]


def _traits_reason(host: HostView, ctx: Context) -> str:
    missing = sorted(ctx.required - host.traits)
    if missing:
        return f"lacks trait(s) {', '.join(missing)}"
    return f"has forbidden trait(s) {', '.join(sorted(ctx.forbidden & host.traits))}"


traits = Check(
    "traits",
    _traits_rejects,
    _traits_reason,
    _traits_mask,
    lambda ctx: bool(ctx.required or ctx.forbidden),
)


# -- capacity: every dimension fits under the host's usable totals ----------------------------


def short_dimensions(host: HostView, ctx: Context) -> list[str]:
    """The dimensions where one more instance does not fit (as the claim UPDATE decides:
    ``used + demand <= usable``)."""
    free = ctx.free(host)
    demand = (ctx.vcpus, ctx.ram_mib, ctx.disk_gib)
    return [d for d, f, n in zip(DIMENSIONS, free, demand, strict=True) if n > f]


def _capacity_rejects(host: HostView, ctx: Context) -> bool:
    c = ctx.claimed.get(host.id)
    if c is None:
        return (
            host.used_vcpus + ctx.vcpus > host.usable_vcpus
            or host.used_ram_mib + ctx.ram_mib > host.usable_ram_mib
            or host.used_disk_gib + ctx.disk_gib > host.usable_disk_gib
        )
    return (
        host.used_vcpus + c[0] + ctx.vcpus > host.usable_vcpus
        or host.used_ram_mib + c[1] + ctx.ram_mib > host.usable_ram_mib
        or host.used_disk_gib + c[2] + ctx.disk_gib > host.usable_disk_gib
    )


def _capacity_reason(host: HostView, ctx: Context) -> str:
    free = dict(zip(DIMENSIONS, ctx.free(host), strict=True))
    demand = {"vcpus": ctx.vcpus, "ram_mib": ctx.ram_mib, "disk_gib": ctx.disk_gib}
    usable = {
        "vcpus": host.usable_vcpus,
        "ram_mib": host.usable_ram_mib,
        "disk_gib": host.usable_disk_gib,
    }
    return "; ".join(
        f"{d}: needs {demand[d]} {UNITS[d]}, {max(free[d], 0)} free of {usable[d]}"
        for d in short_dimensions(host, ctx)
    )


def short_columns(fleet: Fleet, ctx: Context) -> Bools:
    """``(3, N)``: :func:`short_dimensions` of every host, one row per dimension."""
    short: Bools = np.greater(ctx.used_columns(fleet) + ctx.demand(), fleet.usable)
    return short


def _capacity_mask(fleet: Fleet, ctx: Context) -> Bools:
    usable, used = fleet.usable, ctx.used_columns(fleet)
    short: Bools = np.greater(used[0] + ctx.vcpus, usable[0])
    short |= np.greater(used[1] + ctx.ram_mib, usable[1])
    short |= np.greater(used[2] + ctx.disk_gib, usable[2])
    return short


capacity = Check("capacity", _capacity_rejects, _capacity_reason, _capacity_mask)


# -- server_group: hard affinity / anti-affinity ----------------------------------------------


def _group_rejects(host: HostView, ctx: Context) -> bool:
    if ctx.group_policy is GroupPolicy.ANTI_AFFINITY:
        return ctx.members.get(host.id, 0) >= (ctx.group_cap or 1)
    if ctx.group_policy is GroupPolicy.AFFINITY:
        return ctx.total_members > 0 and ctx.members.get(host.id, 0) == 0
    return False


def _group_reason(host: HostView, ctx: Context) -> str:
    here = ctx.members.get(host.id, 0)
    if ctx.group_policy is GroupPolicy.ANTI_AFFINITY:
        return f"anti-affinity: holds {here} group member(s), at most {ctx.group_cap} per host"
    return f"affinity: the group's {ctx.total_members} member(s) are on another host"


def _group_mask(fleet: Fleet, ctx: Context) -> Bools:
    if ctx.group_policy is GroupPolicy.ANTI_AFFINITY:
        return np.greater_equal(ctx.member_columns(fleet), ctx.group_cap or 1)
    if ctx.group_policy is GroupPolicy.AFFINITY and ctx.total_members > 0:
        return np.equal(ctx.member_columns(fleet), 0)
    return np.zeros(len(fleet), np.bool_)


server_group = Check(
    "server_group",
    _group_rejects,
    _group_reason,
    _group_mask,
    lambda ctx: ctx.group_policy in (GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY),
)


#: The pipeline, cheapest first.
CHECKS: tuple[Check, ...] = (host_state, datacentre, traits, capacity, server_group)
#: Checks whose outcome depends on what this decision already placed.
DYNAMIC: tuple[Check, ...] = (capacity, server_group)
