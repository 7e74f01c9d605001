"""Background work inside an API process: retrying PENDING placements.

Every replica runs the loop; the store's conditional updates make concurrent passes safe.
A pass runs every ``pending_retry_interval_s`` and immediately after ``poke()`` (capacity
appeared: a host registered, changed or came back, an instance was deleted or evacuated).
"""

from __future__ import annotations

import logging

from controlplane.reconciler.loop import Loop
from controlplane.store import Store

log = logging.getLogger(__name__)


class PendingLoop(Loop):
    """A daemon thread that places PENDING instances when capacity may have appeared."""

    def __init__(self, store: Store, interval_s: float) -> None:
        # Look run_once up at every pass, so a wrapper set on the instance (the metrics
        # that count passes and failures) is the one that runs.
        super().__init__("pending-loop", interval_s, lambda: self.run_once())
        self.store = store

    def run_once(self) -> int:
        """One pass; returns how many instances were placed."""
        placed = self.store.instances.place_pending()
        if placed:
            log.info("placed %d pending instance(s)", placed)
        return placed
