"""Table definitions (SQLAlchemy 2 declarative). Migrations live in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
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


class DataCentreRow(Base):
    __tablename__ = "datacentres"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))


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
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
