"""Choose hosts for a request (``count`` instances) on one snapshot, or explain why not.

1. One pass runs the checks (cheapest first) over every host, counting rejections.
2. The feasible hosts are ranked (see :mod:`controlplane.scheduler.scores`) in a heap.
3. Instances are placed one by one: pop the best host, re-check it against what this
   decision already placed there, claim it in the decision's context, and push it back
   with its new rank. Only the chosen host's rank can change, so the heap stays valid.
4. If fewer than ``count`` were placed, a second pass (with this decision's claims)
   explains why the rest found no host.

Pure: no I/O, deterministic for a given snapshot, request and seed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from controlplane.domain.instance import PlacementExplanation
from controlplane.scheduler.checks import CHECKS, capacity, server_group
from controlplane.scheduler.context import Context
from controlplane.scheduler.explain import Tally, explanation
from controlplane.scheduler.scores import rank, rank_all
from controlplane.scheduler.view import HostView, PlacementRequest

#: Checks whose outcome depends on what this decision already placed.
DYNAMIC = (capacity, server_group)


@dataclass(frozen=True, slots=True)
class Placement:
    """One instance's host."""

    host_id: str
    host_name: str
    datacentre: str
    generation: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Hosts for up to ``requested`` instances (in request order) and the explanation."""

    placements: tuple[Placement, ...]
    explanation: PlacementExplanation

    @property
    def requested(self) -> int:
        """How many instances the request asked for."""
        return self.explanation.requested

    @property
    def complete(self) -> bool:
        """Whether every requested instance has a host."""
        return len(self.placements) == self.requested


def _pass(
    view: tuple[HostView, ...] | list[HostView], ctx: Context
) -> tuple[list[HostView], Tally]:
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
                tally.reject(check, host, ctx)
            else:
                kept.append(host)
        feasible = kept
    tally.feasible = len(feasible)
    return feasible, tally


def select(
    view: tuple[HostView, ...] | list[HostView], request: PlacementRequest, seed: int = 0
) -> Plan:
    """Place ``request.count`` instances on the snapshot ``view`` (see the module doc)."""
    ctx = Context.of(request)
    feasible, tally = _pass(view, ctx)
    count, policy = request.count, request.policy
    heap = rank_all(feasible, ctx, policy, seed, count)
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
    names = [h.name for h in chosen]
    group = request.group.name if request.group is not None else None
    if len(chosen) == count:
        spread_over = len(set(names))
        rejected = sum(tally.rejected.values())
        message = (
            f"placed {count} on {spread_over} host(s) by {policy.value}: "
            + ", ".join(sorted(set(names))[:10])
            + ("" if spread_over <= 10 else f" and {spread_over - 10} more")
            + f"; {tally.evaluated} evaluated, {tally.feasible} feasible, {rejected} rejected"
        )
        outcome = "placed"
    else:
        if chosen:  # why the rest found nowhere, given what this decision placed
            tally = _pass(view, ctx)[1]
            tally.feasible = len(feasible)
        why = tally.summary(request.datacentre)
        message = why if not chosen else f"placed {len(chosen)} of {count}; then {why}"
        outcome = "partial" if chosen else "pending"
    return Plan(
        placements=tuple(Placement(h.id, h.name, h.datacentre, h.generation) for h in chosen),
        explanation=explanation(
            tally,
            outcome=outcome,
            message=message,
            policy=policy.value,
            seed=seed,
            requested=count,
            hosts=names,
            datacentre=request.datacentre,
            group=group,
        ),
    )
