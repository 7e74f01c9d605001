"""Explanations: bounded tallies of what every check rejected, and the message people read.

Whatever the fleet size, an explanation holds counts per check, per short dimension, and
at most ``EXAMPLES_PER_CHECK`` example hosts per check (the first by name, so the
explanation does not depend on the order hosts were read in).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from controlplane.domain.instance import EXAMPLES_PER_CHECK, HostRejection, PlacementExplanation
from controlplane.scheduler.checks import Check, short_dimensions
from controlplane.scheduler.context import Context
from controlplane.scheduler.view import HostView


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

    def reject(self, check: Check, host: HostView, ctx: Context) -> None:
        """Count ``host`` as rejected by ``check``; keep it as an example if among the first."""
        self.rejected[check.name] = self.rejected.get(check.name, 0) + 1
        kept = self.examples.setdefault(check.name, [])
        if len(kept) < EXAMPLES_PER_CHECK or host.name < kept[-1][0]:
            bisect.insort(kept, (host.name, check.reason(host, ctx)))
            del kept[EXAMPLES_PER_CHECK:]
        if check.name == "capacity":
            for dim in short_dimensions(host, ctx):
                self.capacity_short[dim] = self.capacity_short.get(dim, 0) + 1
            if (
                ctx.vcpus <= host.usable_vcpus
                and ctx.ram_mib <= host.usable_ram_mib
                and ctx.disk_gib <= host.usable_disk_gib
            ):
                self.fits_when_free += 1

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
