"""Background-loop metrics (per replica): passes and failures of each control-plane loop.

- ``govcloud_reconcile_passes_total{loop}``: passes run (``loop="pending"``: the
  pending-placement retry loop);
- ``govcloud_reconcile_errors_total{loop}``: passes that raised.

Failures reported by agents are fleet-wide state, not loop errors: see
``govcloud_instance_action_failures_total`` and ``govcloud_fleet_instances{state="ERROR"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

T = TypeVar("T")


class ReconcileMetrics:
    """Pass and error counters per loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.passes = Counter(
            "govcloud_reconcile_passes",
            "Reconcile passes run, per loop",
            ["loop"],
            registry=registry,
        )
        self.errors = Counter(
            "govcloud_reconcile_errors",
            "Reconcile passes that failed, per loop",
            ["loop"],
            registry=registry,
        )

    def counted(self, loop: str, run: Callable[[], T]) -> Callable[[], T]:
        """``run`` wrapped to count its passes and failures (exceptions propagate)."""
        passes, errors = self.passes.labels(loop), self.errors.labels(loop)

        def wrapper() -> T:
            passes.inc()
            try:
                return run()
            except Exception:
                errors.inc()
                raise

        return wrapper
