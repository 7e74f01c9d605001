"""Choose a host for one request, or explain why none fits."""

from __future__ import annotations

import random
from collections import Counter

from pydantic import BaseModel, ConfigDict

from controlplane.domain.resources import DIMENSIONS
from controlplane.scheduler.checks import CHECKS
from controlplane.scheduler.view import FleetView, HostView, PlacementRequest


class Plan(BaseModel):
    """The chosen host and the generation it was chosen at."""

    model_config = ConfigDict(frozen=True)

    host_id: str
    host_name: str
    generation: int
    evaluated: int


class Rejection(BaseModel):
    """One host a check turned down, and why."""

    model_config = ConfigDict(frozen=True)

    host: str
    check: str
    reason: str


class Explanation(BaseModel):
    """Why no host fits: every rejection, plus a one-paragraph summary."""

    model_config = ConfigDict(frozen=True)

    evaluated: int
    rejections: tuple[Rejection, ...]
    datacentre: str | None = None

    @property
    def by_check(self) -> dict[str, int]:
        """How many hosts each check rejected."""
        return dict(Counter(r.check for r in self.rejections))

    def summary(self, limit: int = 5) -> str:
        """A message a person can act on: counts per check, then the first few hosts."""
        if self.evaluated == 0:
            where = f" in data centre {self.datacentre}" if self.datacentre else ""
            return f"no hosts are registered{where}; enrol hosts with an agent first"
        counts = ", ".join(f"{n} by {check}" for check, n in sorted(self.by_check.items()))
        shown = "; ".join(f"{r.host}: {r.reason}" for r in self.rejections[:limit])
        more = len(self.rejections) - limit
        tail = f"; and {more} more" if more > 0 else ""
        return f"no valid host among {self.evaluated} evaluated (rejected {counts}): {shown}{tail}"


def _score(host: HostView, request: PlacementRequest) -> float:
    """Spread: prefer the host with the largest free fraction left after the claim."""
    after = host.free - request.resources
    fractions = [
        getattr(after, d) / getattr(host.usable, d) for d in DIMENSIONS if getattr(host.usable, d)
    ]
    return min(fractions, default=0.0)


def select(view: FleetView, request: PlacementRequest, seed: int = 0) -> Plan | Explanation:
    """Run the checks over the snapshot and pick the best-scoring feasible host.

    Ties are broken by a shuffle seeded with ``seed``, so the same inputs give the same plan.
    """
    rejections: list[Rejection] = []
    feasible: list[HostView] = []
    for host in sorted(view, key=lambda h: h.name):
        for name, check in CHECKS:
            reason = check(host, request)
            if reason is not None:
                rejections.append(Rejection(host=host.name, check=name, reason=reason))
                break
        else:
            feasible.append(host)
    if not feasible:
        return Explanation(
            evaluated=len(view), rejections=tuple(rejections), datacentre=request.datacentre
        )
    random.Random(seed).shuffle(feasible)  # noqa: S311 - tie-breaking, not security
    best = max(feasible, key=lambda h: _score(h, request))
    return Plan(
        host_id=best.id, host_name=best.name, generation=best.generation, evaluated=len(view)
    )
