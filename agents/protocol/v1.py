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


class StatusReport(BaseModel):
    """A batch of observations."""

    instances: list[InstanceStatus] = Field(default_factory=list, max_length=10000)
