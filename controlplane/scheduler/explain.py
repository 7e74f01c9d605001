"""Explanations: bounded tallies of what every check rejected, and the message people read.

Whatever the fleet size, an explanation holds counts per check, per short dimension, and
at most ``EXAMPLES_PER_CHECK`` example hosts per check (the first by name, so the
explanation does not depend on the order hosts were read in). A check's rejections are
recorded all at once from its mask: counts and dimension tallies are array sums, and only
the example hosts have their reason formatted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controlplane.domain.instance import EXAMPLES_PER_CHECK, HostRejection, PlacementExplanation
from controlplane.domain.resources import DIMENSIONS
from controlplane.scheduler.checks import Check, capacity, short_columns
from controlplane.scheduler.context import Context
from controlplane.scheduler.fleet import Bools, Fleet


@dataclass(slots=True)
class Tally:
    """Rejections counted during one pass over the fleet."""

    evaluated: int = 0
    feasible: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    #: check name -> sorted [(host name, reason)], at most EXAMPLES_PER_CHECK.
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    capacity_short: dict[str, int] = field(default_factory=dict)
    fits_when_free: int = 0

    def record(self, check: Check, fleet: Fleet, rejected: Bools, ctx: Context) -> None:
        """Count the hosts where ``rejected`` is set as rejected by ``check`` (which must not
        have recorded before in this tally) and keep the first by name as examples."""
        positions = np.flatnonzero(rejected)
        if not len(positions):
            return
        self.rejected[check.name] = len(positions)
        first = fleet.first_by_name(positions, EXAMPLES_PER_CHECK).tolist()
        self.examples[check.name] = [
            (host.name, check.reason(host, ctx)) for host in map(fleet.host, first)
        ]
        if check is capacity:
            short = np.take(short_columns(fleet, ctx), positions, axis=1)
            for dim, n in zip(DIMENSIONS, np.count_nonzero(short, axis=1).tolist(), strict=True):
                if n:
                    self.capacity_short[dim] = n
            fits = (np.take(fleet.usable, positions, axis=1) >= ctx.demand()).all(axis=0)
            self.fits_when_free = int(np.count_nonzero(fits))

    def example_list(self) -> list[HostRejection]:
        """Every kept example, ordered by host name."""
        return sorted(
            (
                HostRejection(host=h, check=c, reason=r)
                for c, kept in self.examples.items()
                for h, r in kept
            ),
            key=lambda e: (e.host, e.check),
        )

    def summary(self, datacentre: str | None, limit: int = 5) -> str:
        """Why nothing fits: counts per check, then the first few hosts, then how many more."""
        if self.evaluated == 0:
            where = f" in data centre {datacentre}" if datacentre else ""
            return f"no hosts are registered{where}; enrol hosts with an agent first"
        counts = ", ".join(f"{n} by {check}" for check, n in sorted(self.rejected.items()))
        examples = self.example_list()
        shown = "; ".join(f"{e.host}: {e.reason}" for e in examples[:limit])
        more = sum(self.rejected.values()) - min(limit, len(examples))
        tail = f"; and {more} more" if more > 0 else ""
        return f"no valid host among {self.evaluated} evaluated (rejected {counts}): {shown}{tail}"


def explanation(
    tally: Tally,
    *,
    outcome: str,
    message: str,
    policy: str,
    seed: int,
    requested: int,
    hosts: list[str],
    datacentre: str | None,
    group: str | None,
) -> PlacementExplanation:
    """The persisted, API-visible form of a decision."""
    return PlacementExplanation(
        outcome=outcome,
        message=message,
        policy=policy,
        seed=seed,
        requested=requested,
        placed=len(hosts),
        evaluated=tally.evaluated,
        feasible=tally.feasible,
        datacentre=datacentre,
        group=group,
        rejected=dict(sorted(tally.rejected.items())),
        examples=tally.example_list(),
        capacity_short=dict(sorted(tally.capacity_short.items())),
        fits_when_free=tally.fits_when_free,
        hosts=hosts,
    )
