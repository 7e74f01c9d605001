"""The consolidation loop: every replica, each ``drain_interval_s``, advances every running
consolidation (``store/consolidation.py``): refreshes steps from their migrations, starts
re-validated steps up to the plan's limit, powers down emptied hosts, finishes plans with
nothing left. Everything it acts on is in the store, so a restarted control plane carries
on where it stopped; passes are idempotent.
"""

from __future__ import annotations

import logging

from controlplane.reconciler.loop import Loop
from controlplane.settings import Settings
from controlplane.store import Store
from controlplane.store.consolidation import ConsolidationRepo
from controlplane.store.consolidation_run import ConsolidationPass
from controlplane.store.migration import MigrationRepo

log = logging.getLogger(__name__)


class ConsolidationLoop(Loop):
    """Advances consolidations."""

    def __init__(self, repo: ConsolidationRepo, interval_s: float) -> None:
        super().__init__("consolidation-loop", interval_s, self.run_once)
        self.repo = repo

    def run_once(self) -> ConsolidationPass:
        """One pass over the open consolidations."""
        report = self.repo.advance()
        if report.started or report.powered_down:
            log.info(
                "consolidation: started %d move(s), powered down %s",
                len(report.started),
                report.powered_down,
            )
        return report


def build(settings: Settings, store: Store, migrations: MigrationRepo) -> ConsolidationLoop:
    """The loop over ``store``, starting moves through ``migrations`` (the drain loop's)."""
    repo = ConsolidationRepo(store.db, store.clock, migrations)
    return ConsolidationLoop(repo, settings.drain_interval_s)
