"""Background work inside an API process: retrying PENDING placements.

Every replica runs the loop; the store's conditional updates make concurrent passes safe.
A pass runs every ``pending_retry_interval_s`` and immediately after ``poke()`` (capacity
appeared: a host registered or changed, an instance was deleted).
"""

from __future__ import annotations

import logging
import threading

from controlplane.store import Store

log = logging.getLogger(__name__)


class PendingLoop:
    """A daemon thread that places PENDING instances when capacity may have appeared."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pending-loop", daemon=True)

    def start(self) -> None:
        """Begin retrying in the background."""
        self._thread.start()

    def poke(self) -> None:
        """Run a pass now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> int:
        """One pass; returns how many instances were placed."""
        placed = self.store.instances.place_pending()
        if placed:
            log.info("placed %d pending instance(s)", placed)
        return placed

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:
                log.exception("pending-placement pass failed; retrying next interval")
