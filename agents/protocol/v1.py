"""Agent protocol, version 1 (served under ``/v1/agent``).

Flow: ``register`` (one-time bootstrap token -> host credential), then periodic
``heartbeat``; ``assignments`` is a long-poll returning every instance the control plane
assigns to the host once its ``generation`` differs from the caller's; ``status`` reports
what libvirt actually shows for those instances.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from controlplane.domain.image import ImageFormat
from controlplane.domain.names import Code, InstanceId, LocalPath, Name, Text, Trait
from controlplane.domain.resources import Resources

PROTOCOL_VERSION = 1


class RegisterRequest(BaseModel):
    """Sent once by a new agent with the bootstrap token an operator issued."""

    bootstrap_token: str = Field(min_length=16, max_length=128)
    name: Name
    capacity: Resources
    traits: list[Trait] = []
    libvirt_uri: str = Field(min_length=1, max_length=1024)
    agent_version: str = Field("", max_length=64)


class RegisterResponse(BaseModel):
    """The host's identity and its long-lived credential (shown once)."""

    host_id: str
    datacentre: Code
    credential: str
    heartbeat_interval_s: float


class Heartbeat(BaseModel):
    """Periodic liveness report with the host's current capacity."""

    capacity: Resources
    domains: int = Field(0, ge=0)
    agent_version: str = Field("", max_length=64)


class HeartbeatAck(BaseModel):
    """Reply to a heartbeat."""

    host_state: str
    heartbeat_interval_s: float
    #: Self-fencing lease: after this long without a successful heartbeat the agent powers
    #: off its domains, because the control plane may restart them on another host
    #: (evacuation). 0 means never (no evacuation for this host).
    fence_after_s: float = 0.0
    #: The control plane may have lost track of this host (its heartbeats stopped long
    #: enough for SUSPECT/DOWN, or this replica has not heard from it before): the agent's
    #: next status report lists every assigned instance, not only the ones whose observed
    #: state changed since its last report. Absent from older control planes.
    report_all: bool = False
    #: Whether any VM of this host is under a Cloud Open Lab scenario load right now: the
    #: agent's usage reporter asks for its loads only while this is true. None (older
    #: control planes): it does not say, and the reporter polls as it always did.
    lab_loads: bool | None = None


class DesiredState(StrEnum):
    """What the agent must converge a domain to."""

    RUNNING = "running"
    STOPPED = "stopped"
    DELETED = "deleted"


class ImageSpec(BaseModel):
    """Enough of an image to build the domain on the host."""

    name: Name
    format: ImageFormat
    path: LocalPath | None = None
    kernel_path: LocalPath | None = None
    initrd_path: LocalPath | None = None
    cmdline: Text = ""


class MigrationRole(StrEnum):
    """This host's side of a migration."""

    SOURCE = "source"
    TARGET = "target"


class MigrationOrder(BaseModel):
    """Optional on an assignment: the instance is moving (absent from older control planes).

    ``source``, ``live``: migrate the running domain to ``peer_uri`` when the driver can
    (libvirt live migration), else pause it and report ``ready``. ``source``, not live
    (cold): power the domain off and report ``ready``. ``target``: with ``create`` false,
    only adopt a domain that arrives (never fence it); with ``create`` true (the handoff),
    define and start it as any new assignment.
    """

    id: str = Field(min_length=1, max_length=64)
    role: MigrationRole
    live: bool = True
    peer_uri: str = Field("", max_length=1024)


class MigrationProgress(StrEnum):
    """What the source side reports about a migration."""

    READY = "ready"
    DONE = "done"
    FAILED = "failed"


class Assignment(BaseModel):
    """One instance the host must run (or remove)."""

    instance_id: InstanceId
    name: Name
    #: The flavor the sizes come from (for logs; absent from older control planes).
    flavor: Name | None = None
    #: The domain's sizes. A shut-off domain with other vCPU/memory sizes is redefined
    #: with these (a resize); a running one is never changed.
    vcpus: int = Field(ge=1)
    ram_mib: int = Field(ge=1)
    disk_gib: int = Field(ge=0)
    image: ImageSpec
    desired: DesiredState
    reboot_seq: int = Field(0, ge=0)
    #: True until the agent has created the domain once; afterwards a missing domain is
    #: reported as vanished instead of being silently recreated.
    create: bool
    #: Set while the instance moves between hosts (see :class:`MigrationOrder`).
    migration: MigrationOrder | None = None


class AssignmentList(BaseModel):
    """Everything assigned to ``host_id`` at ``generation``.

    The agent fences (destroys) ``gc-*`` domains missing from this list, so it first checks
    that the list is really for its own host.
    """

    host_id: str
    generation: int
    assignments: list[Assignment]


class ActualState(StrEnum):
    """What the agent observed in libvirt."""

    BUILDING = "building"
    RUNNING = "running"
    STOPPED = "stopped"
    ABSENT = "absent"
    ERROR = "error"


class InstanceStatus(BaseModel):
    """Observed state of one assigned instance."""

    instance_id: InstanceId
    state: ActualState
    reboot_seq: int = Field(0, ge=0)
    #: The domain's vCPU and memory sizes as libvirt shows them (None: no domain, or not
    #: reported); a resize is done when they equal the instance's.
    vcpus: int | None = Field(None, ge=1)
    ram_mib: int | None = Field(None, ge=1)
    message: Text = ""
    #: The source side of a migration: ready for the handoff, done (live-migrated away) or
    #: failed (``message`` says why). Absent from older agents.
    migration: MigrationProgress | None = None


class StatusReport(BaseModel):
    """A batch of observations.

    The control plane applies each entry and leaves instances that are not listed as they
    are, so an agent may report only what changed since its last acknowledged report; it
    reports everything on its periodic resync, when the assignments' generation moved
    without their content changing, during migrations, and when a heartbeat ack says
    ``report_all``.
    """

    instances: list[InstanceStatus] = Field(default_factory=list, max_length=10000)


# -- Cloud Open Lab load profiles and usage samples (optional; older agents ignore them) ----


class CurveShape(StrEnum):
    """How a synthetic utilisation moves between ``low`` and ``high`` over ``period_s``."""

    CONSTANT = "constant"  # always ``high``
    RAMP = "ramp"  # low -> high over one period, then high
    SINE = "sine"  # low -> high -> low every period
    SQUARE = "square"  # high for ``duty`` of each period, low otherwise


class LoadCurve(BaseModel):
    """Utilisation of one resource as a fraction (0..1) of the flavor's amount over time."""

    shape: CurveShape = CurveShape.CONSTANT
    low: float = Field(0.0, ge=0, le=1)
    high: float = Field(0.5, ge=0, le=1)
    period_s: float = Field(60.0, gt=0, le=86400)
    duty: float = Field(0.5, gt=0, le=1)


class LoadProfile(BaseModel):
    """The synthetic load of one VM of a scenario group (CPU, RAM, disk)."""

    cpu: LoadCurve = LoadCurve()
    ram: LoadCurve = LoadCurve()
    disk: LoadCurve = LoadCurve(high=0.2)


class InstanceLoad(BaseModel):
    """A load to apply to (simulated hosts) or measure on (real hosts) one instance."""

    instance_id: InstanceId
    run_id: str = Field(max_length=64)
    profile: LoadProfile


class LoadList(BaseModel):
    """Instances of this host that are under a Lab scenario load right now."""

    host_id: str
    sample_interval_s: float = Field(5.0, gt=0)
    loads: list[InstanceLoad] = Field(default_factory=list)


class UsageSample(BaseModel):
    """Measured utilisation of one instance, fractions (0..1) of its flavor."""

    instance_id: InstanceId
    cpu: float = Field(ge=0, le=1)
    ram: float = Field(ge=0, le=1)
    disk: float = Field(ge=0, le=1)
    source: str = Field("synthetic", max_length=32, description="synthetic or libvirt")


class UsageReport(BaseModel):
    """A batch of usage samples from one host."""

    samples: list[UsageSample] = Field(default_factory=list, max_length=10000)
