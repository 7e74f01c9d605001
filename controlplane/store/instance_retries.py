"""Placing PENDING requests again when capacity may have appeared (oldest
first, with anti-starvation), and the dry run of a request."""

from __future__ import annotations

import builtins
import logging
import time
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.resources import Resources
from controlplane.scheduler import Plan
from controlplane.store.fleet_index import fleet_view
from controlplane.store.instance_base import Hints, S, check_count, resources_of
from controlplane.store.instance_placing import Blocker, InstancePlacing
from controlplane.store.placement import PlacementConflict
from controlplane.store.server_group import find as find_group
from controlplane.store.tables import (
    DataCentreRow,
    FlavorRow,
    InstanceRow,
    ServerGroupRow,
)

log = logging.getLogger(__name__)

#: PENDING requests in retry order (oldest first).
_PENDING = (
    select(InstanceRow.id, InstanceRow.requested_datacentre, InstanceRow.created_at)
    .where(InstanceRow.state == S.PENDING.value)
    .order_by(InstanceRow.created_at, InstanceRow.id)
)


class InstanceRetries(InstancePlacing):
    """``place_pending`` and ``dry_run``."""

    # -- retries --------------------------------------------------------------------------

    #: Where the last pass that hit its limit stopped: (created_at, id) of the last request
    #: it tried (None: the next pass starts with the oldest).
    _pending_after: tuple[datetime, str] | None = None

    def place_pending(self, limit: int = 100) -> int:
        """Retry up to ``limit`` PENDING instances, oldest first; returns how many were
        placed.

        With more than ``limit`` waiting, each pass goes on after the request the previous
        one stopped at, wrapping around to the oldest, so requests that cannot be placed
        never keep younger ones that could from ever being tried.

        Anti-starvation: a request PENDING for longer than ``hold_after`` that would fit
        once room frees holds back every younger request that competes for its data
        centre (same one, or either side accepts any), so freed room accumulates for it.
        """
        now = self.clock()
        with self.db.transaction() as session:
            candidates = self._pending_window(session, limit)
            blockers = self._blockers(session, now)
        placed = 0
        for instance_id, datacentre, created_at in candidates:
            held = next(
                (
                    b
                    for b in blockers
                    if b.instance_id != instance_id and b.holds(datacentre, created_at)
                ),
                None,
            )
            began = time.perf_counter()
            try:
                with self.db.transaction() as session:
                    # Take the row only if it is still PENDING: two control-plane replicas
                    # retrying the same instance cannot both place it.
                    taken = session.execute(
                        update(InstanceRow)
                        .where(InstanceRow.id == instance_id, InstanceRow.state == S.PENDING.value)
                        .values(updated_at=self.clock())
                        .execution_options(synchronize_session=False)
                    )
                    if taken.rowcount != 1:  # type: ignore[attr-defined]
                        continue
                    row = session.get(InstanceRow, instance_id, populate_existing=True)
                    assert row is not None
                    if held is not None:
                        row.pending_reason = held.reason()
                        continue
                    group = (
                        session.get(ServerGroupRow, row.server_group_id)
                        if row.server_group_id
                        else None
                    )
                    amount = resources_of(row)
                    hints = Hints.of(row.scheduling)
                    plan = self.schedule(
                        fleet_view(session, row.requested_datacentre),
                        self._request(session, amount, row.requested_datacentre, hints, group, 1),
                    )
                    row.placement = plan.explanation.model_dump(mode="json")
                    if plan.placements:
                        self.index.patch(self._claim(session, plan, amount, group, hints))
                        placement, placed_at = plan.placements[0], self.clock()
                        row.state, row.host_id = S.SCHEDULED.value, placement.host_id
                        # An evacuated instance keeps its first placement time: metering
                        # bills one continuous claim, as its quota stayed charged throughout.
                        row.datacentre, row.scheduled_at, row.pending_reason = (
                            placement.datacentre,
                            row.scheduled_at or placed_at,
                            None,
                        )
                        row.updated_at = placed_at
                        placed += 1
                    else:
                        row.pending_reason = plan.explanation.message
                        if (
                            self.hold_after is not None
                            and created_at < now - self.hold_after
                            and plan.explanation.fits_when_free > 0
                        ):
                            blockers.append(
                                Blocker(row.id, row.name, row.requested_datacentre, created_at)
                            )
                self._record(
                    "placed" if plan.placements else "pending",
                    began,
                    1,
                    datacentre,
                    plan,
                )
            except PlacementConflict:
                self._record("conflict", began, 1, datacentre, None)
                log.info("placement race lost for pending %s; next pass retries", instance_id)
        return placed

    def _pending_window(
        self, session: Session, limit: int
    ) -> builtins.list[tuple[str, str | None, datetime]]:
        """The next ``limit`` PENDING requests after ``_pending_after`` in (created_at, id)
        order, wrapping around; moves the cursor."""
        after = self._pending_after
        query = _PENDING.limit(limit)
        if after is None:
            window = list(session.execute(query).tuples())
        else:
            later = or_(
                InstanceRow.created_at > after[0],
                and_(InstanceRow.created_at == after[0], InstanceRow.id > after[1]),
            )
            window = list(session.execute(query.where(later)).tuples())
            if len(window) < limit:  # wrap around to the oldest, up to the cursor
                oldest = _PENDING.where(~later).limit(limit - len(window))
                window += session.execute(oldest).tuples()
        self._pending_after = (window[-1][2], window[-1][0]) if len(window) == limit else None
        return window

    # -- dry run --------------------------------------------------------------------------

    def dry_run(
        self,
        *,
        flavor: str,
        count: int = 1,
        datacentre: str | None = None,
        project: str | None = None,
        server_group: str | None = None,
        hints: Hints | None = None,
    ) -> Plan:
        """Where ``count`` instances of ``flavor`` would go now, and why not; writes nothing
        (the transaction only reads)."""
        check_count(count)
        began = time.perf_counter()
        with self.db.transaction() as session:
            flavor_row = session.get(FlavorRow, flavor)
            if flavor_row is None:
                raise NotFound("flavor", flavor)
            if datacentre is not None and session.get(DataCentreRow, datacentre) is None:
                raise NotFound("dc", datacentre)
            group = None
            if server_group is not None:
                if project is None:
                    raise InvalidRequest(
                        "a server group is named within its project; give the project too",
                        field="project",
                        value=None,
                    )
                group = find_group(session, server_group, project)
            amount = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            request = self._request(session, amount, datacentre, hints or Hints(), group, count)
            plan = self.schedule(fleet_view(session, datacentre), request)
        self._record("dry_run", began, count, datacentre, plan)
        return plan
