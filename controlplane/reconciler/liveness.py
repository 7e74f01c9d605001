"""The host-failure loop: every replica, each ``liveness_interval_s``, sweeps for silent
hosts and evacuates the DOWN hosts that are due.

The rules are in ``domain/liveness.py`` and ``domain/evacuation.py``; the sweeps (locks,
UNKNOWN instances, history, requeueing) in ``store/liveness.py`` and
``store/evacuation.py``. Both are idempotent, so replicas need no leader. Requeued
instances are placed by the pending loop, which is poked at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from controlplane.domain.evacuation import EvacuationTiming
from controlplane.domain.liveness import LivenessPolicy
from controlplane.reconciler.loop import Loop
from controlplane.settings import Settings
from controlplane.store import Store
from controlplane.store.evacuation import EvacuationRepo, EvacuationReport
from controlplane.store.liveness import LivenessRepo, SweepReport

log = logging.getLogger(__name__)


@dataclass
class HostFailureReport:
    """What one pass changed."""

    sweep: SweepReport
    evacuation: EvacuationReport


class LivenessLoop(Loop):
    """Marks hosts SUSPECT / DOWN when their heartbeats stop, then evacuates when due."""

    def __init__(
        self,
        liveness: LivenessRepo,
        evacuation: EvacuationRepo,
        interval_s: float,
        on_requeue: Callable[[], None],
    ) -> None:
        super().__init__("liveness-loop", interval_s, self.run_once)
        self.liveness = liveness
        self.evacuation = evacuation
        self.on_requeue = on_requeue

    def run_once(self) -> HostFailureReport:
        """One sweep and one evacuation pass; returns what changed."""
        sweep = self.liveness.sweep()
        if sweep.down:
            log.warning(
                "hosts down: %s; %d instance(s) now UNKNOWN",
                ", ".join(sweep.down),
                len(sweep.unknown),
            )
        evacuation = self.evacuation.evacuate_due()
        if evacuation.requeued:
            self.on_requeue()
        return HostFailureReport(sweep, evacuation)


def build(settings: Settings, store: Store, on_requeue: Callable[[], None]) -> LivenessLoop:
    """The loop configured from ``settings`` (invalid timing combinations fail here, at
    start-up, with the setting names in the message)."""
    try:
        policy = LivenessPolicy(
            suspect_after_s=settings.host_suspect_after_s,
            down_after_s=settings.host_down_after_s,
        )
        timing = EvacuationTiming(
            fence_after_s=settings.host_fence_after_s,
            margin_s=settings.evacuation_margin_s,
            down_after_s=settings.host_down_after_s,
        )
    except ValidationError as err:
        raise ValueError(
            "inconsistent GOVCLOUD_HOST_SUSPECT_AFTER_S / GOVCLOUD_HOST_DOWN_AFTER_S / "
            "GOVCLOUD_HOST_FENCE_AFTER_S / GOVCLOUD_EVACUATION_MARGIN_S: "
            f"{err.errors()[0]['msg']}"
        ) from None
    return LivenessLoop(
        LivenessRepo(store.db, store.clock, policy),
        EvacuationRepo(store.db, store.clock, timing),
        settings.liveness_interval_s,
        on_requeue,
    )
