"""What one scheduling decision looked like, for metrics and logs (no I/O here).

The store builds a :class:`DecisionRecord` after every decision it commits, records as
pending, loses to a concurrent request, or answers as a dry run, and hands it to the
:data:`DecisionHook` it was given; ``controlplane.metrics`` turns records into Prometheus
counters and histograms. The record carries only bounded labels (outcome, data centre,
check names), never instance ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

#: placed: committed on a host; pending: no host fits (kept PENDING with its explanation);
#: conflict: the chosen host filled up before the commit (re-selected); dry_run: not committed.
Outcome = Literal["placed", "pending", "conflict", "dry_run"]


@dataclass(frozen=True)
class DecisionRecord:
    """One decision: its outcome, how long it took including the commit, and rejections."""

    outcome: Outcome
    seconds: float
    #: Instances decided together (``--count``).
    count: int = 1
    #: The data centre placed into, or the one requested when nothing fit (None: any).
    datacentre: str | None = None
    #: Hosts rejected per check name (``host_state``, ``capacity``, ...).
    rejected_by: Mapping[str, int] = field(default_factory=dict)


DecisionHook = Callable[[DecisionRecord], None]
