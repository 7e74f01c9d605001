"""``Store``: one repository per resource over one database, plus schema migration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import BindParameter, bindparam, func
from sqlalchemy import select as sql_select

from controlplane.domain.datacentre import DataCentre
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.scheduler import select
from controlplane.settings import Settings
from controlplane.store import history
from controlplane.store.audit import AuditRepo
from controlplane.store.catalog import CatalogRepo
from controlplane.store.db import Database
from controlplane.store.host import HostRepo
from controlplane.store.instance import InstanceRepo, Scheduler
from controlplane.store.lab import LabRepo
from controlplane.store.maintenance import MaintenanceRepo
from controlplane.store.migrate import upgrade
from controlplane.store.org import OrgRepo
from controlplane.store.quota import QuotaRepo
from controlplane.store.server_group import ServerGroupRepo
from controlplane.store.sla import SlaRepo
from controlplane.store.tables import DataCentreRow, FlavorRow, HostRow, ImageRow, InstanceRow
from controlplane.store.usage import UsageRepo
from controlplane.store.user import UserRepo

_LIVE = InstanceRow.state != "DELETED"
_IDENT: BindParameter[str] = bindparam("ident")


def utcnow() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class Store:
    """The control plane's whole state, reached through one repository per noun."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        schedule: Scheduler = select,
        placement_max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.clock = clock
        self.orgs = OrgRepo(db)
        self.users = UserRepo(db, clock)
        self.datacentres: CatalogRepo[DataCentre, DataCentreRow] = CatalogRepo(
            db,
            "dc",
            DataCentre,
            DataCentreRow,
            "code",
            in_use=sql_select(func.count()).where(HostRow.datacentre == _IDENT),
        )
        self.flavors: CatalogRepo[Flavor, FlavorRow] = CatalogRepo(
            db,
            "flavor",
            Flavor,
            FlavorRow,
            "name",
            in_use=sql_select(func.count()).where(InstanceRow.flavor == _IDENT, _LIVE),
        )
        self.images: CatalogRepo[Image, ImageRow] = CatalogRepo(
            db,
            "image",
            Image,
            ImageRow,
            "name",
            in_use=sql_select(func.count()).where(InstanceRow.image == _IDENT, _LIVE),
        )
        self.hosts = HostRepo(db, clock)
        self.instances = InstanceRepo(db, clock, schedule, placement_max_attempts)
        self.server_groups = ServerGroupRepo(db, clock)
        self.audit = AuditRepo(db)
        self.quotas = QuotaRepo(db, clock)
        self.usage = UsageRepo(db)
        self.lab = LabRepo(db, clock)
        # SLA: every instance state change is recorded by a flush listener on this database.
        history.install(db, clock)
        self.maintenance = MaintenanceRepo(db, clock)
        self.sla = SlaRepo(db)

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()


def open_store(
    url: str,
    *,
    clock: Callable[[], datetime] = utcnow,
    schedule: Scheduler = select,
    placement_max_attempts: int = 5,
    migrate: bool = True,
) -> Store:
    """Open (and by default migrate to head) the database at ``url``; ensure the root org."""
    db = Database(url)
    if migrate:
        upgrade(db)
    store = Store(db, clock=clock, schedule=schedule, placement_max_attempts=placement_max_attempts)
    store.orgs.ensure_root()
    return store


def open_configured_store(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Store:
    """``open_store`` with the scheduler seed and retry bound taken from ``settings``."""
    store = open_store(
        settings.database_url,
        clock=clock,
        schedule=partial(select, seed=settings.scheduler_seed),
        placement_max_attempts=settings.placement_max_attempts,
    )
    store.instances.default_policy = settings.scheduler_default_policy
    store.instances.index.max_age_s = settings.scheduler_snapshot_max_age_s
    store.instances.hold_after = (
        timedelta(seconds=settings.pending_hold_after_s) if settings.pending_hold_after_s else None
    )
    return store
