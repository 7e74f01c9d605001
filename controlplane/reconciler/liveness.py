"""The liveness loop: every replica sweeps for silent hosts each ``liveness_interval_s``.

The rules are in ``domain/liveness.py``; the sweep (locks, instance UNKNOWN, history) in
``store/liveness.py``. Sweeps are idempotent, so replicas need no leader.
"""

from __future__ import annotations

import logging

from controlplane.reconciler.loop import Loop
from controlplane.store.liveness import LivenessRepo, SweepReport

log = logging.getLogger(__name__)


class LivenessLoop(Loop):
    """Marks hosts SUSPECT / DOWN when their heartbeats stop."""

    def __init__(self, liveness: LivenessRepo, interval_s: float) -> None:
        super().__init__("liveness-loop", interval_s, self.run_once)
        self.liveness = liveness

    def run_once(self) -> SweepReport:
        """One sweep; returns what changed."""
        report = self.liveness.sweep()
        if report.down:
            log.warning(
                "hosts down: %s; %d instance(s) now UNKNOWN",
                ", ".join(report.down),
                len(report.unknown),
            )
        return report
