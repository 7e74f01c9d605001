"""What the parts of the instance repository share: its settings and
metrics hook (:class:`InstanceBase`), the request hints kept for retries, and row helpers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.datacentre import DEFAULT_POLICY, PlacementPolicy
from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    InstanceState,
    PlacementExplanation,
    PowerIntent,
    action_outcome,
)
from controlplane.domain.org import within
from controlplane.domain.resources import Resources
from controlplane.scheduler import FleetView, PlacementRequest, Plan
from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.record import DecisionHook, DecisionRecord, Outcome
from controlplane.schemas.instance import MAX_COUNT
from controlplane.store.db import Database
from controlplane.store.fleet_index import FleetIndex
from controlplane.store.tables import (
    HostRow,
    InstanceActionRow,
    InstanceRow,
)

log = logging.getLogger(__name__)
S = InstanceState
Scheduler = Callable[[Fleet | FleetView, PlacementRequest], Plan]


def to_model(
    row: InstanceRow, host_name: str | None, placement: PlacementExplanation | None = None
) -> Instance:
    """The API model of ``row``; ``placement``: its explanation when the caller has it
    (else it is read back from the row's JSON)."""
    if placement is None and row.placement:
        placement = PlacementExplanation.model_validate(row.placement)
    return Instance(
        id=row.id,
        name=row.name,
        project=row.project,
        org_path=row.org_path,
        flavor=row.flavor,
        image=row.image,
        resources=resources_of(row),
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
        placement=placement,
    )


def resources_of(row: InstanceRow) -> Resources:
    return Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)


def times(amount: Resources, n: int) -> Resources:
    return Resources(
        vcpus=amount.vcpus * n, ram_mib=amount.ram_mib * n, disk_gib=amount.disk_gib * n
    )


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


class InstanceBase:
    """Settings and helpers every part of
    :class:`~controlplane.store.instance.InstanceRepo` uses.

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


def check_count(count: int) -> None:
    """Refuse a request for fewer than 1 or more than MAX_COUNT instances."""
    if not 1 <= count <= MAX_COUNT:
        raise InvalidRequest(
            f"count must be between 1 and {MAX_COUNT}, not {count}",
            field="count",
            limit=MAX_COUNT,
            value=count,
        )


def check_image_fits(
    image: str, min_ram_mib: int, min_disk_gib: int, flavor: str, size: Resources
) -> None:
    """Refuse a flavor (``flavor`` of ``size``) too small for the image's minimums."""
    if size.ram_mib < min_ram_mib:
        raise InvalidRequest(
            f"flavor {flavor} has {size.ram_mib} MiB RAM; image {image} needs at "
            f"least {min_ram_mib} MiB. Choose a larger flavor",
            field="flavor",
            limit=min_ram_mib,
            value=size.ram_mib,
        )
    if size.disk_gib < min_disk_gib:
        raise InvalidRequest(
            f"flavor {flavor} has {size.disk_gib} GiB disk; image {image} needs "
            f"at least {min_disk_gib} GiB. Choose a larger flavor",
            field="flavor",
            limit=min_disk_gib,
            value=size.disk_gib,
        )


def host_name_of(session: Session, host_id: str | None) -> str | None:
    return (
        None
        if host_id is None
        else session.scalar(select(HostRow.name).where(HostRow.id == host_id))
    )
