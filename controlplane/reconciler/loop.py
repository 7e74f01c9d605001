"""A periodic background loop in a daemon thread, shared by the reconcilers.

``Loop(name, interval_s, run_once)`` calls ``run_once`` every ``interval_s`` seconds and
at once after :meth:`Loop.poke`. A failing pass is logged and retried next interval; it
never kills the thread. Tests call ``run_once`` directly with a fake clock instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Loop:
    """Run ``run_once`` periodically (and on demand) until stopped."""

    def __init__(self, name: str, interval_s: float, run_once: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._pass = run_once
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Begin running in the background."""
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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._pass()
            except Exception:
                log.exception("%s pass failed; retrying next interval", self.name)
