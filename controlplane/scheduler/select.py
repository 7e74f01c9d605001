"""Choose hosts for a request (``count`` instances) on one snapshot, or explain why not.

1. The checks run (cheapest first) over the whole :class:`~controlplane.scheduler.fleet.Fleet`
   as boolean masks; each host is counted by the first check that rejects it.
2. Every feasible host is ranked at once with the vectorised keys
   (:mod:`controlplane.scheduler.scores`) into a :class:`~controlplane.scheduler.ranking.Ranking`.
3. Instances are placed one by one: take the best candidate, claim it in the decision's
   context, and give it its new rank (:func:`~controlplane.scheduler.scores.rank`), or drop
   it once a dynamic check (capacity, group rule) rejects it. Only the claimed host's
   values change; should another candidate become unplaceable (hard affinity after the
   first member), the dynamic masks drop every such host at once.
4. If fewer than ``count`` were placed, a second pass (with this decision's claims)
   explains why the rest found no host.

The result is exactly the plan of the per-host definitions (``Check.rejects`` and
``scores.rank`` over a heap); the property tests compare both on random fleets.
Pure: no I/O, deterministic for a given snapshot, request and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from controlplane.domain.instance import PlacementExplanation
from controlplane.scheduler.checks import CHECKS, DYNAMIC
from controlplane.scheduler.context import Context
from controlplane.scheduler.explain import Tally, explanation
from controlplane.scheduler.fleet import Fleet, Positions
from controlplane.scheduler.ranking import Ranking
from controlplane.scheduler.scores import rank, rank_columns
from controlplane.scheduler.view import HostView, PlacementRequest


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


def _pass(fleet: Fleet, ctx: Context) -> tuple[Positions, Tally]:
    """Run the applicable checks, one filter after the other (so each host is counted by
    the first check it fails); the positions of the hosts that pass, and the tally."""
    tally = Tally(evaluated=len(fleet))
    passing = np.ones(len(fleet), np.bool_)
    for check in CHECKS:
        if check.applies(ctx):
            rejected = check.mask(fleet, ctx) & passing
            tally.record(check, fleet, rejected, ctx)
            passing &= ~rejected
    feasible = np.flatnonzero(passing)
    tally.feasible = len(feasible)
    return feasible, tally


def _dynamic_rejects(host: HostView, ctx: Context) -> bool:
    return any(check.applies(ctx) and check.rejects(host, ctx) for check in DYNAMIC)


def select(view: Fleet | Sequence[HostView], request: PlacementRequest, seed: int = 0) -> Plan:
    """Place ``request.count`` instances on the snapshot ``view`` (see the module doc)."""
    fleet = view if isinstance(view, Fleet) else Fleet.of(view)
    ctx = Context.of(request)
    feasible, tally = _pass(fleet, ctx)
    count, policy = request.count, request.policy
    ranking = Ranking(
        fleet,
        feasible,
        rank_columns(fleet, ctx, policy, count, feasible),
        fleet.tiebreak(seed)[feasible],
        depth=count,
    )
    chosen: list[HostView] = []
    while len(chosen) < count and (best := ranking.best()) is not None:
        host = fleet.host(best)
        if _dynamic_rejects(host, ctx):
            # barred by this decision's own claims: so is every host the same masks reject
            ranking.drop(best)
            for check in DYNAMIC:
                if check.applies(ctx):
                    ranking.drop_where(check.mask(fleet, ctx))
            continue
        ctx.claim(host)
        chosen.append(host)
        remaining = count - len(chosen)
        if remaining and not _dynamic_rejects(host, ctx):
            ranking.update(best, rank(host, ctx, policy, seed, remaining))
        else:
            ranking.drop(best)
    return plan_of(chosen, tally, request, seed, lambda: _pass(fleet, ctx)[1])


def plan_of(
    chosen: list[HostView],
    tally: Tally,
    request: PlacementRequest,
    seed: int,
    retally: Callable[[], Tally],
) -> Plan:
    """The plan for the hosts ``chosen`` (in placement order) and its explanation.

    ``tally`` counts the first pass; ``retally`` recounts it given this decision's own
    claims, to say why the rest found nowhere (called only for a partial placement).
    """
    count, policy = request.count, request.policy
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
            feasible, tally = tally.feasible, retally()
            tally.feasible = feasible
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
