"""Creating instances: one decision on the fleet snapshot, one quota charge,
claims and rows, in one transaction; retried on lost placement races."""

from __future__ import annotations

import builtins
import itertools
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from sqlalchemy.orm import Session

from controlplane.domain.errors import Conflict, InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    NoValidHost,
    PowerIntent,
)
from controlplane.domain.org import OrgKind
from controlplane.domain.quota import instance_usage
from controlplane.domain.resources import Resources
from controlplane.scheduler import HostView, Plan
from controlplane.scheduler.record import Outcome
from controlplane.schemas.instance import MAX_COUNT
from controlplane.store import quota
from controlplane.store.instance_base import Hints, S, check_image_fits, to_model
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
)
from quotas import Usage

log = logging.getLogger(__name__)


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


def charge_many(
    session: Session, org_path: str, amount: Resources, count: int, now: datetime, first_id: str
) -> None:
    """One quota charge for ``count`` instances of ``amount`` (locks the path root first)."""
    what = f"instance {first_id}" if count == 1 else f"{count} instances from {first_id}"
    quota._move(session, org_path, instance_usage(amount) * count, Usage(), now, what)


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
        if not 1 <= count <= MAX_COUNT:
            raise InvalidRequest(
                f"count must be between 1 and {MAX_COUNT}, not {count}",
                field="count",
                limit=MAX_COUNT,
                value=count,
            )
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
            org = get_org_row(session, req.project)
            if org.kind != OrgKind.PROJECT.value:
                raise InvalidRequest(
                    f"instances belong to projects; {req.project!r} is a {org.kind}",
                    field="project",
                    value=req.project,
                )
            flavor_row = session.get(FlavorRow, req.flavor)
            if flavor_row is None:
                raise NotFound("flavor", req.flavor)
            image_row = session.get(ImageRow, req.image)
            if image_row is None:
                raise NotFound("image", req.image)
            if req.datacentre is not None and session.get(DataCentreRow, req.datacentre) is None:
                raise NotFound("dc", req.datacentre)
            check_image_fits(image_row, flavor_row)
            group = find_group(session, req.server_group, req.project) if req.server_group else None
            amount = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            rows = [
                InstanceRow(
                    id=str(uuid4()),
                    name=name,
                    project=req.project,
                    org_path=org.path,
                    flavor=req.flavor,
                    image=req.image,
                    vcpus=amount.vcpus,
                    ram_mib=amount.ram_mib,
                    disk_gib=amount.disk_gib,
                    requested_datacentre=req.datacentre,
                    datacentre=None,
                    host_id=None,
                    state=S.PENDING.value,
                    desired_power=PowerIntent.RUNNING.value,
                    reboot_seq=0,
                    created_by=req.actor,
                    created_at=now,
                    updated_at=now,
                    server_group_id=group.id if group is not None else None,
                    scheduling=req.hints.as_json(),
                )
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
            blocker = self._blocker(session, now, req.datacentre, None) if place else None
            if blocker is not None:
                pending_reason = blocker.reason()
            elif place:
                request = self._request(session, amount, req.datacentre, req.hints, group, count)
                view, fresh = self.index.view(session, req.datacentre)
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
            charge_many(session, org.path, amount, count, now, rows[0].id)
            claimed: builtins.list[HostView] = []
            if plan is not None and plan.placements:
                claimed = self._commit(session, rows, plan, amount, group, req.hints)
            explained = plan.explanation.model_dump(mode="json") if plan is not None else None
            for row in rows:
                if row.host_id is None:
                    row.pending_reason = (
                        plan.explanation.message if plan is not None else pending_reason
                    )
                row.placement = explained
            session.add_all(rows)
            session.flush()  # the instance rows exist before their action rows
            for row in rows:
                session.add(
                    InstanceActionRow(
                        instance_id=row.id,
                        action="create",
                        request_id=req.request_id,
                        actor=req.actor,
                        started_at=now,
                    )
                )
            names = {h.id: h.name for h in claimed}
            created = [to_model(r, names.get(r.host_id or "")) for r in rows]
        self.index.patch(claimed)
        if plan is not None:
            outcome: Outcome = "placed" if plan.placements else "pending"
            self._record(outcome, began, count, req.datacentre, plan)
        return created
