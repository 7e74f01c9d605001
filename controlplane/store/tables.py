"""Table definitions (SQLAlchemy 2 declarative). Migrations live in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC clock")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base for every govcloud table."""


class OrganisationRow(Base):
    __tablename__ = "organisations"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(ForeignKey("organisations.code"), nullable=True)
    path: Mapped[str] = mapped_column(String(200), unique=True)
    #: A ministry's override of its data centres' evacuation policy (None: inherit).
    evacuation_policy: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DataCentreRow(Base):
    __tablename__ = "datacentres"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    #: The placement policy requests for this data centre default to (pack | spread).
    placement_policy: Mapped[str] = mapped_column(String(16), default="spread")
    #: What happens to instances of a DOWN host here (none | restart-elsewhere).
    evacuation_policy: Mapped[str] = mapped_column(String(32), default="none")


class HostRow(Base):
    __tablename__ = "hosts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    datacentre: Mapped[str] = mapped_column(ForeignKey("datacentres.code"), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    reserved_vcpus: Mapped[int] = mapped_column(Integer, default=0)
    reserved_ram_mib: Mapped[int] = mapped_column(Integer, default=0)
    reserved_disk_gib: Mapped[int] = mapped_column(Integer, default=0)
    cpu_ratio: Mapped[float] = mapped_column(Float)
    ram_ratio: Mapped[float] = mapped_column(Float)
    disk_ratio: Mapped[float] = mapped_column(Float)
    # Allocatable totals, floor((capacity - reserved) * ratio), kept in step with the
    # columns above so the claim UPDATE can compare integers in SQL.
    usable_vcpus: Mapped[int] = mapped_column(Integer)
    usable_ram_mib: Mapped[int] = mapped_column(Integer)
    usable_disk_gib: Mapped[int] = mapped_column(Integer)
    used_vcpus: Mapped[int] = mapped_column(Integer, default=0)
    used_ram_mib: Mapped[int] = mapped_column(Integer, default=0)
    used_disk_gib: Mapped[int] = mapped_column(Integer, default=0)
    traits: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16))
    libvirt_uri: Mapped[str] = mapped_column(String(1024))
    #: Bumped by every claim or release (placement's compare-and-swap counter).
    generation: Mapped[int] = mapped_column(Integer, default=0)
    #: Bumped whenever what the host's agent must do changes (its long-poll key).
    assign_generation: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The state the liveness loop found when it made the host SUSPECT/DOWN (active,
    #: draining); the next heartbeat restores it (store/liveness.py).
    return_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Power model (W) for consolidation; None: the documented default is assumed.
    idle_watts: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_watts: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Why the host is in its state, when a loop put it there ("powered down for
    #: consolidation ..."); cleared when an operator sets the state.
    state_note: Mapped[str | None] = mapped_column(String(200), nullable=True)


class BootstrapTokenRow(Base):
    __tablename__ = "bootstrap_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    datacentre: Mapped[str] = mapped_column(ForeignKey("datacentres.code"))
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host_id: Mapped[str | None] = mapped_column(String(36))


class FlavorRow(Base):
    __tablename__ = "flavors"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200), default="")


class ImageRow(Base):
    __tablename__ = "images"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    size_mib: Mapped[int] = mapped_column(Integer, default=0)
    min_ram_mib: Mapped[int] = mapped_column(Integer, default=0)
    min_disk_gib: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str | None] = mapped_column(String(1024))
    kernel_path: Mapped[str | None] = mapped_column(String(1024))
    initrd_path: Mapped[str | None] = mapped_column(String(1024))
    cmdline: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(200), default="")


class InstanceRow(Base):
    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_state_created", "state", "created_at"),
        Index("ix_instances_host_state", "host_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    project: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    org_path: Mapped[str] = mapped_column(String(200), index=True)
    # Flavor and image are snapshotted by name and size: they may later be deleted.
    flavor: Mapped[str] = mapped_column(String(63))
    image: Mapped[str] = mapped_column(String(63))
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    requested_datacentre: Mapped[str | None] = mapped_column(String(32))
    datacentre: Mapped[str | None] = mapped_column(String(32))
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"))
    state: Mapped[str] = mapped_column(String(16))
    desired_power: Mapped[str] = mapped_column(String(16))
    reboot_seq: Mapped[int] = mapped_column(Integer, default=0)
    pending_reason: Mapped[str | None] = mapped_column(Text)
    fault: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the instance claimed a host and when it gave it back (metering intervals).
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The server group the instance belongs to (scheduler rules), if any.
    server_group_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: The last placement decision's explanation (bounded JSON, see domain.instance).
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: What the request asked of the scheduler besides its size, kept for retries:
    #: ``{"required_traits": [...], "forbidden_traits": [...], "policy": "pack" | null}``.
    scheduling: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class InstanceActionRow(Base):
    __tablename__ = "instance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(63))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(String(16), default="pending")
    message: Mapped[str] = mapped_column(Text, default="")


class InstanceResizeRow(Base):
    """One resize: the sizes before and after, and when it took effect (metering splits
    the instance's claim interval there, so each part is metered at the size it had)."""

    __tablename__ = "instance_resizes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    old_flavor: Mapped[str] = mapped_column(String(63))
    old_vcpus: Mapped[int] = mapped_column(Integer)
    old_ram_mib: Mapped[int] = mapped_column(Integer)
    old_disk_gib: Mapped[int] = mapped_column(Integer)
    new_flavor: Mapped[str] = mapped_column(String(63))
    new_vcpus: Mapped[int] = mapped_column(Integer)
    new_ram_mib: Mapped[int] = mapped_column(Integer)
    new_disk_gib: Mapped[int] = mapped_column(Integer)


class UserRow(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    org_path: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(63))
    actor_role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class QuotaNodeRow(Base):
    """Limits of one organisation node and the usage of its whole subtree.

    One row per node, locked root first by every transaction that charges or releases.
    """

    __tablename__ = "quota_nodes"

    org: Mapped[str] = mapped_column(ForeignKey("organisations.code"), primary_key=True)
    limits: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    soft_threshold: Mapped[float] = mapped_column(Float)
    usage: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class QuotaEventRow(Base):
    """A node crossing its soft threshold (or refusing a request) in one dimension."""

    __tablename__ = "quota_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    org: Mapped[str] = mapped_column(String(32), index=True)
    org_path: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    dimension: Mapped[str] = mapped_column(String(32))
    used: Mapped[int] = mapped_column(Integer)
    limit: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)


class InstanceEventRow(Base):
    """One change of an instance's state, power intent or host (SLA history).

    Written by the ``before_flush`` listener of :mod:`controlplane.store.history` whenever
    an ``InstanceRow`` is inserted or its ``state``, ``desired_power`` or ``host_id``
    changes, and by ``history.record_inserted`` for rows created with Core (the create
    path); never updated. ``from_state`` is None for the instance's first event.
    """

    __tablename__ = "instance_events"
    __table_args__ = (Index("ix_instance_events_instance_at", "instance_id", "at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    org_path: Mapped[str] = mapped_column(String(200), index=True)
    datacentre: Mapped[str | None] = mapped_column(String(32))
    host_id: Mapped[str | None] = mapped_column(String(36))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    desired_power: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class MaintenanceWindowRow(Base):
    """An announced maintenance window of a data centre or of one host (SLA exclusion)."""

    __tablename__ = "maintenance_windows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # "dc" | "host"
    datacentre: Mapped[str] = mapped_column(String(32), index=True)
    host_id: Mapped[str | None] = mapped_column(String(36))
    host_name: Mapped[str | None] = mapped_column(String(63))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- Cloud Open Lab ---------------------------------------------------------------------------


class LabVendorRow(Base):
    """A vendor of the Cloud Open Lab; its organisation node has the same code."""

    __tablename__ = "lab_vendors"

    code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    org_path: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LabTrialRow(Base):
    """A vendor's trial for a ministry; ``id`` becomes its project's code once approved."""

    __tablename__ = "lab_trials"
    __table_args__ = (UniqueConstraint("vendor", "name", name="uq_lab_trials_vendor_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    vendor: Mapped[str] = mapped_column(ForeignKey("lab_vendors.code"), index=True)
    vendor_path: Mapped[str] = mapped_column(String(200))
    ministry: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    ministry_path: Mapped[str] = mapped_column(String(200))
    offering: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200), default="")
    template: Mapped[str] = mapped_column(String(63))
    ttl_hours: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(16), index=True)
    project_path: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(63))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(63))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cleaned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Warning leads (hours) already recorded for the current ``ends_at``.
    warned: Mapped[list[int]] = mapped_column(JSON, default=list)
    certified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    certified_by: Mapped[str | None] = mapped_column(String(63))
    final_usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LabTrialEventRow(Base):
    """One entry of a trial's history (append-only)."""

    __tablename__ = "lab_trial_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("lab_trials.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(63))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LabEvidenceRow(Base):
    """A scenario result or document (by checksum) attached to a stage of a trial."""

    __tablename__ = "lab_evidence"
    __table_args__ = (
        UniqueConstraint("trial_id", "stage", "sha256", name="uq_lab_evidence_trial_stage_sha"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("lab_trials.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uri: Mapped[str | None] = mapped_column(String(1024))
    run_id: Mapped[str | None] = mapped_column(String(64))
    results: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    added_by: Mapped[str] = mapped_column(String(63))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LabSignoffRow(Base):
    """A stage signed off, by whom and in which role, over which evidence."""

    __tablename__ = "lab_signoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("lab_trials.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    signed_by: Mapped[str] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(String(200), default="")
    evidence: Mapped[list[int]] = mapped_column(JSON, default=list)


class LabExtensionRow(Base):
    """A request for more time for a trial, decided by a lab operator."""

    __tablename__ = "lab_extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("lab_trials.id"), index=True)
    hours: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(63))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(63))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ServerGroupRow(Base):
    """A project's server group. Its row is locked (``FOR UPDATE``) by every placement of
    a member under a hard rule, after the quota rows and before the host rows."""

    __tablename__ = "server_groups"
    __table_args__ = (UniqueConstraint("project", "name", name="uq_server_groups_project_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    project: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    org_path: Mapped[str] = mapped_column(String(200), index=True)
    policy: Mapped[str] = mapped_column(String(32))
    max_per_host: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MigrationRow(Base):
    """One move of an instance between hosts (``domain/migration.py``). While in flight it
    holds the target claim; the instance row keeps the source host until the move ends."""

    __tablename__ = "instance_migrations"
    __table_args__ = (Index("ix_instance_migrations_phase", "phase"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(16))
    source_host_id: Mapped[str] = mapped_column(String(36), index=True)
    target_host_id: Mapped[str] = mapped_column(String(36), index=True)
    source_datacentre: Mapped[str] = mapped_column(String(32))
    target_datacentre: Mapped[str] = mapped_column(String(32))
    drain_id: Mapped[str | None] = mapped_column(String(36), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(63))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DrainRow(Base):
    """Emptying a host or a data centre (``domain/migration.py``), advanced by the drain
    loop."""

    __tablename__ = "drains"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: Host id (kind ``host``) or data-centre code (kind ``dc``).
    subject: Mapped[str] = mapped_column(String(36), index=True)
    subject_name: Mapped[str] = mapped_column(String(63))
    target_datacentre: Mapped[str | None] = mapped_column(String(32))
    max_parallel: Mapped[int] = mapped_column(Integer)
    end_state: Mapped[str] = mapped_column(String(16))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")
    maintenance_window: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(63))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LabRunRow(Base):
    """A Cloud Open Lab scenario run in a trial's project (``store/lab_runs.py``)."""

    __tablename__ = "lab_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("lab_trials.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    scenario: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    server_groups: Mapped[list[str]] = mapped_column(JSON)
    failures: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[list[Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    load_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    load_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LabRunInstanceRow(Base):
    """A VM a scenario run created: its group, and when it ran (or why it failed)."""

    __tablename__ = "lab_run_instances"

    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("lab_runs.id"), index=True)
    group_name: Mapped[str] = mapped_column(String(63))
    outcome: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    running_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fault: Mapped[str | None] = mapped_column(Text)


class LabRunSampleRow(Base):
    """One utilisation sample of one VM of a run, as its host's agent reported it."""

    __tablename__ = "lab_run_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("lab_runs.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    group_name: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    cpu: Mapped[float] = mapped_column(Float)
    ram: Mapped[float] = mapped_column(Float)
    disk: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))


# -- consolidation for energy (store/consolidation.py) -------------------------------------


class ConsolidationRow(Base):
    """A stored consolidation plan of one data centre and its execution state."""

    __tablename__ = "consolidations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    datacentre: Mapped[str] = mapped_column(ForeignKey("datacentres.code"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reserve: Mapped[int] = mapped_column(Integer)
    max_fill: Mapped[float] = mapped_column(Float)
    max_parallel: Mapped[int] = mapped_column(Integer)
    #: The ConsolidationPlan as computed when it started (JSON).
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(63))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsolidationStepRow(Base):
    """One move of a stored consolidation plan (one live migration when started)."""

    __tablename__ = "consolidation_steps"
    __table_args__ = (
        UniqueConstraint("consolidation_id", "seq", name="uq_consolidation_steps_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consolidation_id: Mapped[str] = mapped_column(ForeignKey("consolidations.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str] = mapped_column(String(36))
    instance_name: Mapped[str] = mapped_column(String(63))
    source_host_id: Mapped[str] = mapped_column(String(36))
    source_name: Mapped[str] = mapped_column(String(63))
    target_host_id: Mapped[str] = mapped_column(String(36))
    target_name: Mapped[str] = mapped_column(String(63))
    vcpus: Mapped[int] = mapped_column(Integer)
    ram_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    migration_id: Mapped[str | None] = mapped_column(String(36))
    message: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsolidationHostRow(Base):
    """A host a stored consolidation empties (to power down, or as a spare)."""

    __tablename__ = "consolidation_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consolidation_id: Mapped[str] = mapped_column(ForeignKey("consolidations.id"), index=True)
    host_id: Mapped[str] = mapped_column(String(36))
    host_name: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
