"""Instances: creation with placement, user actions, resize, agent status, history, pending
retries."""

from __future__ import annotations

import builtins
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    ImageSpec,
    InstanceStatus,
)
from controlplane.domain.datacentre import DEFAULT_POLICY, PlacementPolicy
from controlplane.domain.errors import Conflict, InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    InstanceAction,
    InstanceState,
    NoValidHost,
    PlacementExplanation,
    PowerIntent,
    action_outcome,
    can_transition,
    check_action,
)
from controlplane.domain.org import OrgKind, within
from controlplane.domain.quota import instance_usage
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler import FleetView, HostView, PlacementRequest, Plan
from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.groups import violation
from controlplane.scheduler.record import DecisionHook, DecisionRecord, Outcome
from controlplane.schemas.instance import MAX_COUNT
from controlplane.store import migration, quota
from controlplane.store.db import Database, in_subtree
from controlplane.store.fleet_index import FleetIndex, fleet_view
from controlplane.store.host import bump_assignments
from controlplane.store.org import get_row as get_org_row
from controlplane.store.placement import PlacementConflict, claim, release, resize_claim
from controlplane.store.server_group import find as find_group
from controlplane.store.server_group import group_view, members_by_host
from controlplane.store.server_group import lock as lock_group
from controlplane.store.tables import (
    DataCentreRow,
    FlavorRow,
    HostRow,
    ImageRow,
    InstanceActionRow,
    InstanceResizeRow,
    InstanceRow,
    ServerGroupRow,
)
from quotas import Usage

log = logging.getLogger(__name__)
S = InstanceState
Scheduler = Callable[[Fleet | FleetView, PlacementRequest], Plan]

#: Agent observations -> the instance state they mean.
OBSERVED: dict[ActualState, InstanceState] = {
    ActualState.BUILDING: S.BUILDING,
    ActualState.RUNNING: S.RUNNING,
    ActualState.STOPPED: S.STOPPED,
    ActualState.ERROR: S.ERROR,
}


@dataclass
class StatusOutcome:
    """What a status report did: instances whose state changed, claims released, and
    reports ignored because the instance is not on the reporting host."""

    changed: list[str] = field(default_factory=list)
    released: int = 0
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Blocker:
    """A PENDING request that has waited too long and would fit once room frees: younger
    requests that compete for its data centre(s) are held back behind it."""

    instance_id: str
    name: str
    datacentre: str | None
    created_at: datetime

    def holds(self, datacentre: str | None, created_at: datetime | None) -> bool:
        """Whether a request for ``datacentre`` made at ``created_at`` (None: now) waits."""
        if created_at is not None and created_at <= self.created_at:
            return False
        return self.datacentre is None or datacentre is None or datacentre == self.datacentre

    def reason(self) -> str:
        """The pending reason of a held request."""
        where = f"data centre {self.datacentre}" if self.datacentre else "any data centre"
        return (
            f"held behind older request {self.name} ({self.instance_id}), waiting since "
            f"{self.created_at.isoformat()} for {where}, so it is not starved; "
            "will retry automatically"
        )


def _model(row: InstanceRow, host_name: str | None) -> Instance:
    return Instance(
        id=row.id,
        name=row.name,
        project=row.project,
        org_path=row.org_path,
        flavor=row.flavor,
        image=row.image,
        resources=_resources(row),
        datacentre=row.datacentre,
        requested_datacentre=row.requested_datacentre,
        host=row.host_id,
        host_name=host_name,
        state=InstanceState(row.state),
        desired_power=PowerIntent(row.desired_power),
        reboot_seq=row.reboot_seq,
        pending_reason=row.pending_reason,
        fault=row.fault,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        launched_at=row.launched_at,
        server_group=row.server_group_id,
        placement=(PlacementExplanation.model_validate(row.placement) if row.placement else None),
    )


def _resources(row: InstanceRow) -> Resources:
    return Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)


def _times(amount: Resources, n: int) -> Resources:
    return Resources(
        vcpus=amount.vcpus * n, ram_mib=amount.ram_mib * n, disk_gib=amount.disk_gib * n
    )


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


@dataclass(frozen=True)
class Hints:
    """What a request asks of the scheduler besides its size (kept for retries)."""

    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    policy: PlacementPolicy | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``instances.scheduling`` column."""
        return {
            "required_traits": sorted(self.required_traits),
            "forbidden_traits": sorted(self.forbidden_traits),
            "policy": self.policy.value if self.policy else None,
        }

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Hints:
        """Read the column back."""
        data = data or {}
        policy = data.get("policy")
        return cls(
            frozenset(data.get("required_traits", ())),
            frozenset(data.get("forbidden_traits", ())),
            PlacementPolicy(policy) if policy else None,
        )


#: The oldest PENDING requests created before ``before`` (anti-starvation), built once.
_OLD_PENDING = (
    select(
        InstanceRow.id,
        InstanceRow.name,
        InstanceRow.requested_datacentre,
        InstanceRow.created_at,
        InstanceRow.placement,
    )
    .where(InstanceRow.state == S.PENDING.value, InstanceRow.created_at < bindparam("before"))
    .order_by(InstanceRow.created_at, InstanceRow.id)
    .limit(20)
)


class InstanceRepo:
    """Everything that changes an instance row goes through here.

    ``on_decision`` (settable after construction) is called after every scheduling
    decision with a :class:`~controlplane.scheduler.record.DecisionRecord`.
    """

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        schedule: Scheduler,
        max_attempts: int = 5,
        *,
        on_decision: DecisionHook | None = None,
        default_policy: PlacementPolicy = DEFAULT_POLICY,
        hold_after: timedelta | None = timedelta(minutes=5),
        index: FleetIndex | None = None,
    ) -> None:
        self.db = db
        #: This process's reusable fleet snapshot for new requests (see fleet_index).
        self.index = index or FleetIndex()
        self.clock = clock
        self.schedule = schedule
        self.max_attempts = max_attempts
        self.on_decision = on_decision
        #: Policy when neither the request nor its data centre names one.
        self.default_policy = default_policy
        #: A PENDING request older than this that would fit once room frees holds back
        #: younger competing requests (None: never).
        self.hold_after = hold_after

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
            _check_image_fits(image_row, flavor_row)
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
            created = [_model(r, names.get(r.host_id or "")) for r in rows]
        self.index.patch(claimed)
        if plan is not None:
            outcome: Outcome = "placed" if plan.placements else "pending"
            self._record(outcome, began, count, req.datacentre, plan)
        return created

    def _request(
        self,
        session: Session,
        amount: Resources,
        datacentre: str | None,
        hints: Hints,
        group: ServerGroupRow | None,
        count: int,
    ) -> PlacementRequest:
        """The scheduler's request; the policy is the request's, else its data centre's,
        else the default."""
        policy = hints.policy
        if policy is None and datacentre is not None:
            stored = session.scalar(
                select(DataCentreRow.placement_policy).where(DataCentreRow.code == datacentre)
            )
            policy = PlacementPolicy(stored) if stored else None
        return PlacementRequest(
            resources=amount,
            datacentre=datacentre,
            required_traits=hints.required_traits,
            forbidden_traits=hints.forbidden_traits,
            count=count,
            policy=policy or self.default_policy,
            group=group_view(session, group) if group is not None else None,
        )

    def _commit(
        self,
        session: Session,
        rows: builtins.list[InstanceRow],
        plan: Plan,
        amount: Resources,
        group: ServerGroupRow | None,
        hints: Hints,
    ) -> builtins.list[HostView]:
        """Claim the plan's hosts for the first ``len(plan.placements)`` rows; returns the
        claimed hosts' new rows. Raises PlacementConflict when a host no longer has room, is
        no longer eligible (state, data centre, traits: the snapshot may be older than the
        transaction), or a hard group rule would break given what concurrent requests
        committed meanwhile."""
        if group is not None:
            locked = lock_group(session, group.id)
            policy = GroupPolicy(locked.policy)
            if policy.hard:
                cap = (locked.max_per_host or 1) if policy is GroupPolicy.ANTI_AFFINITY else None
                problem = violation(
                    policy,
                    cap,
                    members_by_host(session, locked.id),
                    [p.host_id for p in plan.placements],
                )
                if problem is not None:
                    raise PlacementConflict(
                        f"server group {locked.name} changed since the snapshot: {problem}",
                        group=locked.id,
                    )
        per_host = Counter(p.host_id for p in plan.placements)
        claimed = []
        for host_id in sorted(per_host):  # host rows in ascending id order: no deadlocks
            host = claim(session, host_id, _times(amount, per_host[host_id]))
            if not hints.required_traits <= host.traits or hints.forbidden_traits & host.traits:
                raise PlacementConflict(f"host {host.name} traits changed since the snapshot")
            claimed.append(host)
        now = self.clock()
        for row, placement in zip(rows, plan.placements, strict=False):
            row.state, row.host_id = S.SCHEDULED.value, placement.host_id
            # An evacuated instance keeps its first placement time: metering bills one
            # continuous claim, as its quota stayed charged throughout.
            row.datacentre, row.scheduled_at, row.pending_reason = (
                placement.datacentre,
                row.scheduled_at or now,
                None,
            )
            row.updated_at = now
        return claimed

    def _record(
        self,
        outcome: Outcome,
        began: float,
        count: int,
        datacentre: str | None,
        plan: Plan | None,
    ) -> None:
        """Hand the decision to the metrics hook (never fails the request)."""
        if self.on_decision is None:
            return
        placed_dc = plan.placements[0].datacentre if plan and plan.placements else None
        record = DecisionRecord(
            outcome=outcome,
            seconds=time.perf_counter() - began,
            count=count,
            datacentre=placed_dc or datacentre,
            rejected_by=dict(plan.explanation.rejected) if plan else {},
        )
        try:
            self.on_decision(record)
        except Exception:
            log.exception("decision hook failed")

    # -- anti-starvation ------------------------------------------------------------------

    def _blockers(self, session: Session, now: datetime) -> builtins.list[Blocker]:
        """PENDING requests waiting longer than ``hold_after`` that would fit once room
        frees (their last explanation found hosts that were only full), oldest first."""
        if self.hold_after is None:
            return []
        rows = session.connection().execute(_OLD_PENDING, {"before": now - self.hold_after})
        return [
            Blocker(iid, name, dc, created)
            for iid, name, dc, created, placement in rows
            if placement and placement.get("fits_when_free", 0) > 0
        ]

    def _blocker(
        self,
        session: Session,
        now: datetime,
        datacentre: str | None,
        created_at: datetime | None,
        exclude: str | None = None,
    ) -> Blocker | None:
        for blocker in self._blockers(session, now):
            if blocker.instance_id != exclude and blocker.holds(datacentre, created_at):
                return blocker
        return None

    # -- retries --------------------------------------------------------------------------

    def place_pending(self, limit: int = 100) -> int:
        """Retry PENDING instances, oldest first; returns how many were placed.

        Anti-starvation: a request PENDING for longer than ``hold_after`` that would fit
        once room frees holds back every younger request that competes for its data
        centre (same one, or either side accepts any), so freed room accumulates for it.
        """
        now = self.clock()
        with self.db.transaction() as session:
            candidates = list(
                session.execute(
                    select(InstanceRow.id, InstanceRow.requested_datacentre, InstanceRow.created_at)
                    .where(InstanceRow.state == S.PENDING.value)
                    .order_by(InstanceRow.created_at, InstanceRow.id)
                    .limit(limit)
                )
            )
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
                    amount = _resources(row)
                    hints = Hints.of(row.scheduling)
                    plan = self.schedule(
                        fleet_view(session, row.requested_datacentre),
                        self._request(session, amount, row.requested_datacentre, hints, group, 1),
                    )
                    row.placement = plan.explanation.model_dump(mode="json")
                    if plan.placements:
                        self.index.patch(self._commit(session, [row], plan, amount, group, hints))
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
        if not 1 <= count <= MAX_COUNT:
            raise InvalidRequest(
                f"count must be between 1 and {MAX_COUNT}, not {count}",
                field="count",
                limit=MAX_COUNT,
                value=count,
            )
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

    # -- reads --------------------------------------------------------------------------

    def get(self, instance_id: str, scope: str) -> Instance:
        """One instance the caller (scoped to ``scope``) may see, else NotFound."""
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope)
            return _model(row, _host_name(session, row.host_id))

    def list(
        self,
        scope: str,
        *,
        state: str | None = None,
        datacentre: str | None = None,
        host: str | None = None,
        org: str | None = None,
        name: str | None = None,
        limit: int = 100,
        marker: str | None = None,
    ) -> list[Instance]:
        """Instances in ``scope``'s subtree (or ``org``'s, inside it), oldest first.

        DELETED instances are listed only when ``state="DELETED"`` is asked for.
        """
        query = (
            select(InstanceRow, HostRow.name)
            .outerjoin(HostRow, HostRow.id == InstanceRow.host_id)
            .where(in_subtree(InstanceRow.org_path, scope))
        )
        if state:
            query = query.where(InstanceRow.state == state)
        else:
            query = query.where(InstanceRow.state != S.DELETED.value)
        if datacentre:
            query = query.where(InstanceRow.datacentre == datacentre)
        if host:
            query = query.where((HostRow.name == host) | (HostRow.id == host))
        if name:
            query = query.where(InstanceRow.name == name)
        with self.db.transaction() as session:
            if org:
                org_path = get_org_row(session, org).path
                if not within(org_path, scope):
                    raise NotFound("org", org)
                query = query.where(in_subtree(InstanceRow.org_path, org_path))
            if marker:
                after = self._visible_row(session, marker, scope)
                query = query.where(
                    (InstanceRow.created_at > after.created_at)
                    | ((InstanceRow.created_at == after.created_at) & (InstanceRow.id > after.id))
                )
            rows = session.execute(
                query.order_by(InstanceRow.created_at, InstanceRow.id).limit(limit)
            )
            return [_model(r, h) for r, h in rows]

    def actions(self, instance_id: str, scope: str) -> builtins.list[InstanceAction]:
        """The instance's action history, oldest first."""
        with self.db.transaction() as session:
            self._visible_row(session, instance_id, scope)
            rows = session.scalars(
                select(InstanceActionRow)
                .where(InstanceActionRow.instance_id == instance_id)
                .order_by(InstanceActionRow.id)
            )
            return [InstanceAction.model_validate(r, from_attributes=True) for r in rows]

    # -- user actions -------------------------------------------------------------------

    def request(
        self, instance_id: str, action: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Record the user's intent (start/stop/reboot/delete) for the agent to carry out."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            state = InstanceState(row.state)
            check_action(action, state, instance_id)
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action=action,
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                )
            )
            if action == "start":
                row.desired_power = PowerIntent.RUNNING.value
            elif action == "stop":
                row.desired_power = PowerIntent.STOPPED.value
            elif action == "reboot":
                row.reboot_seq += 1
            elif state is S.PENDING:  # delete before placement: nothing to undo on a host
                row.state, row.deleted_at = S.DELETED.value, now
                quota.release(session, row.org_path, _resources(row))
            else:
                row.state = S.DELETING.value
            row.updated_at = now
            session.flush()
            # Only what the request itself completes (deleting a PENDING instance): a reboot
            # is done when the agent reports it applied, never at request time.
            self._finish_actions(session, row, reboot_applied=0)
            bump_assignments(session, row.host_id)
            return _model(row, _host_name(session, row.host_id))

    def resize(
        self, instance_id: str, flavor: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Give a STOPPED instance the sizes of ``flavor``, on the host it already has.

        One transaction, locks in the global order: the instance row, then the quota rows
        root first (only growing dimensions are checked: QuotaExceeded), then the host (a
        conditional UPDATE by the difference: InsufficientCapacity). Then the instance
        takes the new flavor and sizes, the resize is recorded for metering, an action row
        is added (finished when the agent reports the domain redefined) and the host's
        agent is woken. Everything or nothing.
        """
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            flavor_row = session.get(FlavorRow, flavor)
            if flavor_row is None:
                raise NotFound("flavor", flavor)
            if flavor == row.flavor:
                raise InvalidRequest(
                    f"instance {row.name} ({row.id}) already has flavor {flavor}; "
                    "choose another flavor",
                    field="flavor",
                    value=flavor,
                )
            check_action("resize", InstanceState(row.state), instance_id)
            image_row = session.get(ImageRow, row.image)
            if image_row is not None:  # in use, so it cannot have been deleted
                _check_image_fits(image_row, flavor_row)
            old = _resources(row)
            new = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            assert row.host_id is not None  # a STOPPED instance holds a claim
            quota.adjust(session, row.org_path, old, new, now, row.id)
            resize_claim(session, row.host_id, old, new)
            session.add(
                InstanceResizeRow(
                    instance_id=row.id,
                    at=now,
                    old_flavor=row.flavor,
                    old_vcpus=old.vcpus,
                    old_ram_mib=old.ram_mib,
                    old_disk_gib=old.disk_gib,
                    new_flavor=flavor,
                    new_vcpus=new.vcpus,
                    new_ram_mib=new.ram_mib,
                    new_disk_gib=new.disk_gib,
                )
            )
            superseded = session.scalars(
                select(InstanceActionRow).where(
                    InstanceActionRow.instance_id == row.id,
                    InstanceActionRow.action == "resize",
                    InstanceActionRow.result == "pending",
                )
            )
            for earlier in superseded:
                earlier.result, earlier.finished_at = "cancelled", now
                earlier.message = f"superseded by a resize to {flavor} (request {request_id})"
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="resize",
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                    message=f"{row.flavor} -> {flavor}",
                )
            )
            row.flavor = flavor
            row.vcpus, row.ram_mib, row.disk_gib = new.vcpus, new.ram_mib, new.disk_gib
            row.updated_at = now
            bump_assignments(session, row.host_id)
            return _model(row, _host_name(session, row.host_id))

    # -- agent side ---------------------------------------------------------------------

    def assignments(self, host_id: str) -> AssignmentList:
        """What the agent of ``host_id`` must run, at the host's assignment generation."""
        with self.db.transaction() as session:
            host = session.get(HostRow, host_id)
            if host is None:
                raise NotFound("host", host_id)
            rows = session.execute(
                select(InstanceRow, ImageRow)
                .join(ImageRow, ImageRow.name == InstanceRow.image)
                .where(InstanceRow.host_id == host_id, InstanceRow.state != S.DELETED.value)
                .order_by(InstanceRow.created_at)
            )
            return AssignmentList(
                host_id=host_id,
                generation=host.assign_generation,
                assignments=_with_migrations(session, host_id, rows),
            )

    def assignment_generation(self, host_id: str) -> int:
        """The long-poll key of ``host_id``."""
        with self.db.transaction() as session:
            generation = session.scalar(
                select(HostRow.assign_generation).where(HostRow.id == host_id)
            )
            if generation is None:
                raise NotFound("host", host_id)
            return generation

    def apply_status(self, host_id: str, statuses: builtins.list[InstanceStatus]) -> StatusOutcome:
        """Move instances to what the agent observed (only instances on ``host_id``)."""
        outcome = StatusOutcome()
        for status in statuses:
            with self.db.transaction() as session:
                row = session.get(InstanceRow, status.instance_id, with_for_update=True)
                if (
                    row is not None
                    and row.state == S.MIGRATING.value
                    and migration.observe(session, self.clock(), row, host_id, status)
                ):
                    if row.state != S.MIGRATING.value:
                        outcome.changed.append(row.id)
                    continue
                if row is None or row.host_id != host_id:
                    outcome.ignored.append(status.instance_id)
                    continue
                before = row.state
                self._observe(session, row, status)
                if row.state != before:
                    outcome.changed.append(row.id)
                    outcome.released += row.state == S.DELETED.value
        return outcome

    def _observe(self, session: Session, row: InstanceRow, status: InstanceStatus) -> None:
        current = InstanceState(row.state)
        now = self.clock()
        if status.state is ActualState.ABSENT:
            if current is S.DELETING:
                new, fault = S.DELETED, None
                quota.release(session, row.org_path, _resources(row))
                release(session, row.host_id or "", _resources(row))
                row.deleted_at = now
            elif current in (S.SCHEDULED, S.BUILDING, S.DELETED):
                return  # not created yet, or already gone
            else:
                new = S.ERROR
                fault = (
                    f"domain vanished from host (last seen {current.value}); it was "
                    "removed outside govcloud. Delete the instance and create it again"
                )
        else:
            new = OBSERVED[status.state]
            fault = (status.message or "the agent reported an error") if new is S.ERROR else None
        if current is S.DELETING and new is not S.DELETED:
            return  # the agent has not removed it yet
        if not can_transition(current, new):
            log.warning("ignoring %s -> %s for %s", current, new, row.id)
            return
        if new is not current:
            row.state = new.value
            row.updated_at = now
            if current in (S.SCHEDULED, S.BUILDING):
                bump_assignments(session, row.host_id)  # "create" no longer applies
        if new is S.RUNNING and row.launched_at is None:
            row.launched_at = now
        if fault is not None:
            row.fault = fault
        session.flush()
        resized = status.vcpus == row.vcpus and status.ram_mib == row.ram_mib
        self._finish_actions(session, row, status.reboot_seq, resized=resized)

    def _finish_actions(
        self, session: Session, row: InstanceRow, reboot_applied: int, *, resized: bool = False
    ) -> None:
        state = InstanceState(row.state)
        pending = session.scalars(
            select(InstanceActionRow).where(
                InstanceActionRow.instance_id == row.id, InstanceActionRow.result == "pending"
            )
        )
        for action in pending:
            outcome = action_outcome(
                action.action, state, reboot_applied, row.reboot_seq, resized=resized
            )
            if outcome is not None:
                action.result, action.finished_at = outcome, self.clock()
                if outcome == "error":
                    action.message = row.fault or ""

    @staticmethod
    def _visible_row(
        session: Session, instance_id: str, scope: str, lock: bool = False
    ) -> InstanceRow:
        row = session.get(InstanceRow, instance_id, with_for_update=lock)
        # Another tenant's instance is reported as missing, not forbidden: no existence leak.
        if row is None or not within(row.org_path, scope):
            raise NotFound("instance", instance_id)
        return row


def _check_image_fits(image: ImageRow, flavor: FlavorRow) -> None:
    if flavor.ram_mib < image.min_ram_mib:
        raise InvalidRequest(
            f"flavor {flavor.name} has {flavor.ram_mib} MiB RAM; image {image.name} needs at "
            f"least {image.min_ram_mib} MiB. Choose a larger flavor",
            field="flavor",
            limit=image.min_ram_mib,
            value=flavor.ram_mib,
        )
    if flavor.disk_gib < image.min_disk_gib:
        raise InvalidRequest(
            f"flavor {flavor.name} has {flavor.disk_gib} GiB disk; image {image.name} needs "
            f"at least {image.min_disk_gib} GiB. Choose a larger flavor",
            field="flavor",
            limit=image.min_disk_gib,
            value=flavor.disk_gib,
        )


def _host_name(session: Session, host_id: str | None) -> str | None:
    return (
        None
        if host_id is None
        else session.scalar(select(HostRow.name).where(HostRow.id == host_id))
    )


def _with_migrations(
    session: Session, host_id: str, rows: Iterable[Any]
) -> builtins.list[Assignment]:
    """The host's assignments with migration orders: those it holds (as the source) carry
    the order; instances migrating here are added (``create`` only after the handoff)."""
    outgoing, incoming = migration.orders_for(session, host_id)
    result = [
        _assignment(inst, img).model_copy(update={"migration": outgoing.get(inst.id)})
        for inst, img in rows
    ]
    if incoming:
        orders = {iid: (order, create) for iid, order, create in incoming}
        for inst, img in session.execute(
            select(InstanceRow, ImageRow)
            .join(ImageRow, ImageRow.name == InstanceRow.image)
            .where(InstanceRow.id.in_(sorted(orders)))
            .order_by(InstanceRow.created_at)
        ):
            order, create = orders[inst.id]
            result.append(
                _assignment(inst, img).model_copy(update={"migration": order, "create": create})
            )
    return result


def _assignment(inst: InstanceRow, image: ImageRow) -> Assignment:
    desired = (
        DesiredState.DELETED if inst.state == S.DELETING.value else DesiredState(inst.desired_power)
    )
    return Assignment(
        instance_id=inst.id,
        name=inst.name,
        flavor=inst.flavor,
        vcpus=inst.vcpus,
        ram_mib=inst.ram_mib,
        disk_gib=inst.disk_gib,
        desired=desired,
        reboot_seq=inst.reboot_seq,
        create=inst.state in (S.SCHEDULED.value, S.BUILDING.value),
        image=ImageSpec(
            name=image.name,
            format=image.format,
            path=image.path,
            kernel_path=image.kernel_path,
            initrd_path=image.initrd_path,
            cmdline=image.cmdline,
        ),
    )
