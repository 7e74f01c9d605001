"""The drain loop: every replica, each ``drain_interval_s``, rolls back migrations that
are stuck or whose instance left MIGRATING, then advances every running drain (host
drains, maintenance, data-centre evacuations) by starting migrations up to its limit.

Everything it acts on is in the store (``store/drain.py``, ``store/migration.py``), so a
restarted control plane carries on where it stopped; passes are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from controlplane.reconciler.loop import Loop
from controlplane.settings import Settings
from controlplane.store import Store
from controlplane.store.drain import DrainPass, DrainRepo
from controlplane.store.migration import MigrationRepo

log = logging.getLogger(__name__)


@dataclass
class DrainLoopReport:
    """What one pass did."""

    rolled_back: list[str]
    drains: DrainPass


class DrainLoop(Loop):
    """Advances drains and sweeps migrations."""

    def __init__(
        self,
        migrations: MigrationRepo,
        drains: DrainRepo,
        interval_s: float,
        migration_timeout_s: float,
    ) -> None:
        super().__init__("drain-loop", interval_s, self.run_once)
        self.migrations = migrations
        self.drains = drains
        self.timeout = timedelta(seconds=migration_timeout_s)

    def run_once(self) -> DrainLoopReport:
        """One sweep and one advance."""
        rolled_back = self.migrations.sweep(self.timeout)
        if rolled_back:
            log.warning("rolled back %d migration(s): %s", len(rolled_back), rolled_back)
        drains = self.drains.advance()
        if drains.started:
            log.info("drains started %d migration(s)", len(drains.started))
        return DrainLoopReport(rolled_back, drains)


def build(settings: Settings, store: Store) -> DrainLoop:
    """The loop (and its repositories) over ``store``."""
    migrations = MigrationRepo(
        store.db, store.clock, store.instances.schedule, settings.placement_max_attempts
    )
    drains = DrainRepo(store.db, store.clock, migrations)
    return DrainLoop(migrations, drains, settings.drain_interval_s, settings.migration_timeout_s)
