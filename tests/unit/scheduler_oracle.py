"""The scheduler's per-host reference implementation (the oracle for property tests).

This is the pure-Python selection the vectorised scheduler replaced (moved here, not kept in
production): one pass of ``Check.rejects`` per host with a per-host tally, ranks from
``scores.rank`` in a heap, one instance at a time. ``controlplane.scheduler.select`` must
return exactly the same :class:`~controlplane.scheduler.select.Plan` for every input.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from controlplane.domain.instance import EXAMPLES_PER_CHECK
from controlplane.scheduler.checks import CHECKS, DYNAMIC, Check, short_dimensions
from controlplane.scheduler.context import Context
from controlplane.scheduler.explain import Tally
from controlplane.scheduler.scores import rank
from controlplane.scheduler.select import Plan, plan_of
from controlplane.scheduler.view import HostView, PlacementRequest


def reject(tally: Tally, check: Check, host: HostView, ctx: Context) -> None:
    """Count ``host`` as rejected by ``check``; keep it as an example if among the first."""
    tally.rejected[check.name] = tally.rejected.get(check.name, 0) + 1
    kept = tally.examples.setdefault(check.name, [])
    if len(kept) < EXAMPLES_PER_CHECK or host.name < kept[-1][0]:
        bisect.insort(kept, (host.name, check.reason(host, ctx)))
        del kept[EXAMPLES_PER_CHECK:]
    if check.name == "capacity":
        for dim in short_dimensions(host, ctx):
            tally.capacity_short[dim] = tally.capacity_short.get(dim, 0) + 1
        if (
            ctx.vcpus <= host.usable_vcpus
            and ctx.ram_mib <= host.usable_ram_mib
            and ctx.disk_gib <= host.usable_disk_gib
        ):
            tally.fits_when_free += 1


def _pass(view: Sequence[HostView], ctx: Context) -> tuple[list[HostView], Tally]:
    """Run the applicable checks, one filter after the other (so each host is counted by
    the first check it fails)."""
    tally = Tally(evaluated=len(view))
    feasible = list(view)
    for check in CHECKS:
        if not check.applies(ctx):
            continue
        rejects, kept = check.rejects, []
        for host in feasible:
            if rejects(host, ctx):
                reject(tally, check, host, ctx)
            else:
                kept.append(host)
        feasible = kept
    tally.feasible = len(feasible)
    return feasible, tally


def select(view: Sequence[HostView], request: PlacementRequest, seed: int = 0) -> Plan:
    """Place ``request.count`` instances on the snapshot ``view``, host by host."""
    ctx = Context.of(request)
    feasible, tally = _pass(view, ctx)
    count, policy = request.count, request.policy
    heap = [(rank(h, ctx, policy, seed, count), i) for i, h in enumerate(feasible)]
    heapq.heapify(heap)
    chosen: list[HostView] = []
    while heap and len(chosen) < count:
        _, i = heapq.heappop(heap)
        host = feasible[i]
        if any(check.applies(ctx) and check.rejects(host, ctx) for check in DYNAMIC):
            continue  # full, or barred by the group, after this decision's own claims
        ctx.claim(host)
        chosen.append(host)
        remaining = count - len(chosen)
        if remaining and not any(c.applies(ctx) and c.rejects(host, ctx) for c in DYNAMIC):
            heapq.heappush(heap, (rank(host, ctx, policy, seed, remaining), i))
    return plan_of(chosen, tally, request, seed, lambda: _pass(view, ctx)[1])
