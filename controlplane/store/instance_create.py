"""Creating instances: one decision on the fleet snapshot, one quota charge,
claims and rows, in one transaction; retried on lost placement races."""

from __future__ import annotations

import builtins
import itertools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn
from uuid import uuid4

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import Conflict, InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    NoValidHost,
    PowerIntent,
)
from controlplane.domain.org import OrgKind
from controlplane.domain.resources import Resources
from controlplane.scheduler import HostView, Plan
from controlplane.scheduler.record import Outcome
from controlplane.store import history, quota
from controlplane.store.audit import note_inserted
from controlplane.store.fleet_index import epoch_column
from controlplane.store.instance_base import Hints, S, check_count, check_image_fits, to_model
from controlplane.store.instance_placing import InstancePlacing
from controlplane.store.org import get_row as get_org_row
from controlplane.store.placement import PlacementConflict
from controlplane.store.server_group import find as find_group
from controlplane.store.tables import (
    DataCentreRow,
    FlavorRow,
    ImageRow,
    InstanceActionRow,
    InstanceRow,
    OrganisationRow,
)

log = logging.getLogger(__name__)

#: The project's kind and path, the flavor's sizes and the image's minimums (no row: one of
#: them is missing, see ``_refuse``), with the fleet epoch and whether any request has been
#: PENDING since before ``before`` (else there is no blocker to look for): one statement
#: per create, per dialect (the epoch's SQL differs).
_LOOKUP = {
    dialect: select(
        OrganisationRow.kind,
        OrganisationRow.path,
        FlavorRow.vcpus,
        FlavorRow.ram_mib,
        FlavorRow.disk_gib,
        ImageRow.min_ram_mib,
        ImageRow.min_disk_gib,
        epoch_column(dialect),
        exists()
        .where(InstanceRow.state == S.PENDING.value, InstanceRow.created_at < bindparam("before"))
        .label("old_pending"),
    )
    .select_from(OrganisationRow)
    .join(FlavorRow, FlavorRow.name == bindparam("flavor"))
    .join(ImageRow, ImageRow.name == bindparam("image"))
    .where(OrganisationRow.code == bindparam("project"))
    for dialect in ("postgresql", "sqlite")
}
_DC = select(DataCentreRow.code).where(DataCentreRow.code == bindparam("dc"))
_INSERT_INSTANCES = insert(InstanceRow)
_INSERT_ACTIONS = insert(InstanceActionRow)


@dataclass(frozen=True)
class _Create:
    """One create request, as ``create_many`` was called."""

    names: list[str]
    project: str
    flavor: str
    image: str
    datacentre: str | None
    actor: str
    request_id: str
    whole: bool
    server_group: str | None
    hints: Hints


def _names(name: str, count: int) -> builtins.list[str]:
    """``name`` for one instance, ``name-1`` .. ``name-N`` for several."""
    if count == 1:
        return [name]
    longest = f"{name}-{count}"
    if len(longest) > NAME_MAX:
        raise InvalidRequest(
            f"name {name!r} is too long for {count} instances: {longest!r} has "
            f"{len(longest)} characters, at most {NAME_MAX}",
            field="name",
            limit=NAME_MAX - len(f"-{count}"),
            value=name,
        )
    return [f"{name}-{i}" for i in range(1, count + 1)]


NAME_MAX = 63


class InstanceCreation(InstancePlacing):
    """``create`` and ``create_many``."""

    # -- creation -----------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        project: str,
        flavor: str,
        image: str,
        datacentre: str | None,
        actor: str,
        request_id: str,
        server_group: str | None = None,
        hints: Hints | None = None,
    ) -> Instance:
        """Create one instance and, in the same transaction, claim a host for it.

        If no host fits, the instance stays PENDING with the scheduler's explanation and
        the pending loop retries it when capacity appears.
        """
        return self.create_many(
            name=name,
            project=project,
            flavor=flavor,
            image=image,
            datacentre=datacentre,
            actor=actor,
            request_id=request_id,
            server_group=server_group,
            hints=hints,
        )[0]

    def create_many(
        self,
        *,
        name: str,
        project: str,
        flavor: str,
        image: str,
        datacentre: str | None,
        actor: str,
        request_id: str,
        count: int = 1,
        all_or_nothing: bool = True,
        server_group: str | None = None,
        hints: Hints | None = None,
    ) -> builtins.list[Instance]:
        """Create ``count`` instances as one decision on one snapshot, one quota charge and
        one transaction.

        ``all_or_nothing`` (count > 1): either every instance is placed, or NoValidHost
        is raised and nothing is stored. Otherwise as many as fit are placed and the rest
        stay PENDING with the explanation. Conflicts with concurrent requests are retried
        on a fresh snapshot up to ``max_attempts`` times; after that, the instances are
        stored PENDING for the pending loop (all-or-nothing: a Conflict is raised).
        """
        check_count(count)
        whole = all_or_nothing and count > 1
        request = _Create(
            names=_names(name, count),
            project=project,
            flavor=flavor,
            image=image,
            datacentre=datacentre,
            actor=actor,
            request_id=request_id,
            whole=whole,
            server_group=server_group,
            hints=hints or Hints(),
        )
        for attempt in itertools.count():
            place = attempt < self.max_attempts
            if not place and whole:
                raise Conflict(
                    f"lost {self.max_attempts} placement races to concurrent requests; "
                    "nothing was created. Retry the request",
                    code="placement.conflict",
                    attempts=self.max_attempts,
                )
            began = time.perf_counter()
            try:
                return self._create_once(request, place=place, began=began)
            except PlacementConflict:
                self._record("conflict", began, count, datacentre, None)
                self.index.forget()
                log.info("placement race lost for %s; re-snapshotting", name)
        raise AssertionError("itertools.count() does not end")

    def _create_once(self, req: _Create, *, place: bool, began: float) -> builtins.list[Instance]:
        now = self.clock()
        count = len(req.names)
        with self.db.transaction() as session:
            connection = session.connection()
            found = connection.execute(
                _LOOKUP[connection.dialect.name],
                {
                    "project": req.project,
                    "flavor": req.flavor,
                    "image": req.image,
                    "before": now - (self.hold_after or timedelta()),
                },
            ).first()
            if found is None or found.kind != OrgKind.PROJECT.value:
                _refuse(session, req)  # names what is missing or wrong
            assert found is not None
            amount = Resources(vcpus=found.vcpus, ram_mib=found.ram_mib, disk_gib=found.disk_gib)
            if (
                req.datacentre is not None
                and connection.scalar(_DC, {"dc": req.datacentre}) is None
            ):
                raise NotFound("dc", req.datacentre)
            check_image_fits(req.image, found.min_ram_mib, found.min_disk_gib, req.flavor, amount)
            group = find_group(session, req.server_group, req.project) if req.server_group else None
            rows = [
                {
                    "id": str(uuid4()),
                    "name": name,
                    "project": req.project,
                    "org_path": found.path,
                    "flavor": req.flavor,
                    "image": req.image,
                    "vcpus": amount.vcpus,
                    "ram_mib": amount.ram_mib,
                    "disk_gib": amount.disk_gib,
                    "requested_datacentre": req.datacentre,
                    "datacentre": None,
                    "host_id": None,
                    "state": S.PENDING.value,
                    "desired_power": PowerIntent.RUNNING.value,
                    "reboot_seq": 0,
                    "pending_reason": None,
                    "fault": None,
                    "created_by": req.actor,
                    "created_at": now,
                    "updated_at": now,
                    "launched_at": None,
                    "scheduled_at": None,
                    "deleted_at": None,
                    "server_group_id": group.id if group is not None else None,
                    "placement": None,
                    "scheduling": req.hints.as_json(),
                }
                for name in req.names
            ]
            # Decide before taking any lock, so the root quota row is held only for the
            # quota check and the claim; then quota rows (root first), the group, hosts.
            # The rows are inserted last, in their final state (one INSERT and one history
            # event each, no PENDING -> SCHEDULED update).
            plan: Plan | None = None
            pending_reason = (
                f"lost {self.max_attempts} placement races to concurrent requests; "
                "will retry automatically"
            )
            blocker = (
                self._blocker(session, now, req.datacentre, None)
                if place and found.old_pending
                else None
            )
            if blocker is not None:
                pending_reason = blocker.reason()
            elif place:
                request = self._request(session, amount, req.datacentre, req.hints, group, count)
                view, fresh = self.index.view(session, req.datacentre, found.fleet_epoch)
                plan = self.schedule(view, request)
                if not plan.complete and not fresh:  # never give up on a reused snapshot
                    plan = self.schedule(self.index.reload(session, req.datacentre), request)
                if req.whole and not plan.complete:
                    self._record("pending", began, count, req.datacentre, plan)
                    raise NoValidHost(
                        f"cannot place all {count} instances (all_or_nothing): "
                        f"{plan.explanation.message}; nothing was created",
                        requested=count,
                        placeable=len(plan.placements),
                        explanation=plan.explanation.model_dump(mode="json"),
                    )
            quota.charge(session, found.path, amount, now, rows[0]["id"], count)
            claimed: builtins.list[HostView] = []
            explained = plan.explanation.model_dump(mode="json") if plan is not None else None
            if plan is not None and plan.placements:
                claimed = self._claim(session, plan, amount, group, req.hints)
                placed_at = self.clock()
                for row, placement in zip(rows, plan.placements, strict=False):
                    row.update(
                        state=S.SCHEDULED.value,
                        host_id=placement.host_id,
                        datacentre=placement.datacentre,
                        scheduled_at=placed_at,
                        updated_at=placed_at,
                    )
            for row in rows:
                row["placement"] = explained
                if row["host_id"] is None:
                    row["pending_reason"] = (
                        plan.explanation.message if plan is not None else pending_reason
                    )
            # Core inserts (the ORM's unit of work costs more than the whole decision):
            # the rows, their first history events, their create actions.
            connection.execute(_INSERT_INSTANCES, rows)
            history.record_inserted(session, rows)
            connection.execute(
                _INSERT_ACTIONS,
                [
                    {
                        "instance_id": row["id"],
                        "action": "create",
                        "request_id": req.request_id,
                        "actor": req.actor,
                        "started_at": now,
                        "result": "pending",
                        "message": "",
                    }
                    for row in rows
                ],
            )
            note_inserted(session, InstanceRow.__tablename__, [row["id"] for row in rows])
            names = {h.id: h.name for h in claimed}
            why = plan.explanation if plan is not None else None
            created = [
                to_model(InstanceRow(**row), names.get(row["host_id"] or ""), why) for row in rows
            ]
        self.index.patch(claimed)
        if plan is not None:
            outcome: Outcome = "placed" if plan.placements else "pending"
            self._record(outcome, began, count, req.datacentre, plan)
        return created


def _refuse(session: Session, req: _Create) -> NoReturn:
    """Raise the error that explains why ``_LOOKUP`` found nothing usable, checking in
    the order a user fixes them: project, flavor, image."""
    org = get_org_row(session, req.project)
    if org.kind != OrgKind.PROJECT.value:
        raise InvalidRequest(
            f"instances belong to projects; {req.project!r} is a {org.kind}",
            field="project",
            value=req.project,
        )
    if session.get(FlavorRow, req.flavor) is None:
        raise NotFound("flavor", req.flavor)
    raise NotFound("image", req.image)
