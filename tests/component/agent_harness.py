"""Test helpers for the host agent: simulated hosts, a fake clock, a call-recording driver
wrapper and an in-memory stand-in for the control plane's ``/v1/agent`` endpoints.

*Simulated hosts are real*: :func:`simulated_host` writes a ``host.xml`` with
:mod:`agents.drivers.hostxml` and opens it with the real :class:`LibvirtDriver` (libvirt's
test driver). Nothing here fakes libvirt.

*The control plane is faked* (:class:`FakeControlPlane`) because these are tests of the
agent's behaviour; it implements the :class:`agents.client.ControlPlane` protocol the
agent depends on, with the documented semantics (generation long-poll, ``create`` flipped
to False once the agent reported the domain present). Agent <-> real API tests live with
the control plane's component tests.

What "agent restart" means with the test driver: each open of a ``test:///file`` URI has
private state, so a *new connection* is a *new, empty host* (like a host that rebooted and
lost all its VMs). An agent process restart on a real host keeps the domains, because
libvirtd outlives the agent. To model that, a restart test builds a new :class:`Agent`
(new loops, new in-memory state, credential re-read from disk) over the *same*
``LibvirtDriver`` -- the stand-in for the libvirtd that kept running.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.client import AuthenticationFailed, ControlPlaneError, HostCredential
from agents.config import AgentSettings
from agents.drivers.base import DomainInfo, HostDriver, InstanceMetadata
from agents.drivers.domainxml import DomainType, DomainXmlOptions
from agents.drivers.hostxml import ForeignDomain, write_host_xml
from agents.drivers.libvirt import LibvirtDriver
from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    Heartbeat,
    HeartbeatAck,
    ImageSpec,
    InstanceStatus,
    RegisterRequest,
    RegisterResponse,
    StatusReport,
)

BOOTSTRAP_TOKEN = "bootstrap-token-0123456789abcdef"
KERNEL_IMAGE = ImageSpec(
    name="tiny",
    format="kernel",
    kernel_path="/var/lib/govcloud/images/tiny/vmlinuz",
    initrd_path="/var/lib/govcloud/images/tiny/initrd.img",
    cmdline="console=ttyS0 quiet",
)
DISK_IMAGE = ImageSpec(name="debian-12", format="qcow2", path="/var/lib/govcloud/images/d12.qcow2")


# -- simulated hosts ---------------------------------------------------------------------


@dataclass
class SimulatedHost:
    """A libvirt test-driver host opened through the real driver."""

    state_dir: Path
    uri: str
    driver: LibvirtDriver

    def raw_domain(self, name: str) -> Any:
        """The raw libvirt domain (to act behind the agent's back, like an operator)."""
        return self.driver.connection.lookupByName(name)

    def domain_names(self) -> set[str]:
        """Every domain name on the host, managed or not."""
        return {str(d.name()) for d in self.driver.connection.listAllDomains(0)}

    def raw_state(self, name: str) -> int:
        """libvirt's state number of a domain (1 running, 5 shut off)."""
        return int(self.raw_domain(name).state()[0])


def simulated_host(
    state_dir: Path,
    *,
    vcpus: int = 8,
    ram_mib: int = 16384,
    foreign: tuple[ForeignDomain, ...] = (),
    domain_type: DomainType = "test",
) -> SimulatedHost:
    """Write ``host.xml`` under ``state_dir`` and open it with the real driver."""
    uri = write_host_xml(state_dir, vcpus=vcpus, ram_mib=ram_mib, foreign_domains=foreign)
    options = DomainXmlOptions(domain_type=domain_type, serial_dir=state_dir / "serial")
    return SimulatedHost(state_dir=state_dir, uri=uri, driver=LibvirtDriver(uri, options))


def agent_settings(state_dir: Path, **overrides: Any) -> AgentSettings:
    """Settings for an in-process agent (explicit values, so the environment can't leak in)."""
    values: dict[str, Any] = {
        "control_plane_url": "http://control-plane.invalid",
        "bootstrap_token": BOOTSTRAP_TOKEN,
        "name": "sim-host-1",
        "capacity": {"vcpus": 8, "ram_mib": 16384, "disk_gib": 200},
        "traits": ["ssd"],
        "state_dir": state_dir,
        "heartbeat_interval_s": 10.0,
        "poll_wait_s": 30.0,
        "resync_interval_s": 30.0,
    }
    values.update(overrides)
    return AgentSettings(**values)


def assignment(
    name: str = "web-1",
    *,
    desired: DesiredState = DesiredState.RUNNING,
    instance_id: str | None = None,
    reboot_seq: int = 0,
    create: bool = True,
    image: ImageSpec = KERNEL_IMAGE,
    vcpus: int = 1,
    ram_mib: int = 256,
) -> Assignment:
    """An assignment with a fresh UUID instance id unless one is given."""
    return Assignment(
        instance_id=instance_id or str(uuid.uuid4()),
        name=name,
        vcpus=vcpus,
        ram_mib=ram_mib,
        disk_gib=1,
        image=image,
        desired=desired,
        reboot_seq=reboot_seq,
        create=create,
    )


# -- clock -------------------------------------------------------------------------------


class FakeClock:
    """A clock whose waits return at once and move time forward instead."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if not event.is_set():
            self.now += max(0.0, timeout)
        return event.is_set()


# -- a driver wrapper that records what was done -----------------------------------------


@dataclass
class RecordingDriver:
    """Delegates to a real driver and records every state-changing call."""

    inner: HostDriver
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return self.inner.uri

    def list_domains(self) -> list[DomainInfo]:
        return self.inner.list_domains()

    def get(self, instance_id: str) -> DomainInfo | None:
        return self.inner.get(instance_id)

    def define(self, assignment: Assignment, *, start: bool) -> DomainInfo:
        self.calls.append(("define+start" if start else "define", assignment.instance_id))
        return self.inner.define(assignment, start=start)

    def start(self, instance_id: str) -> DomainInfo:
        self.calls.append(("start", instance_id))
        return self.inner.start(instance_id)

    def stop(self, instance_id: str, *, force: bool = False) -> DomainInfo:
        self.calls.append(("stop", instance_id))
        return self.inner.stop(instance_id, force=force)

    def reboot(self, instance_id: str, *, hard: bool = False) -> DomainInfo:
        self.calls.append(("reboot", instance_id))
        return self.inner.reboot(instance_id, hard=hard)

    def delete(self, instance_id: str) -> bool:
        self.calls.append(("delete", instance_id))
        return self.inner.delete(instance_id)

    def suspend(self, instance_id: str) -> DomainInfo:
        self.calls.append(("suspend", instance_id))
        return self.inner.suspend(instance_id)

    def can_migrate_to(self, target_uri: str) -> bool:
        return self.inner.can_migrate_to(target_uri)

    def migrate(self, instance_id: str, target_uri: str) -> None:
        self.calls.append(("migrate", instance_id))
        self.inner.migrate(instance_id, target_uri)

    def read_metadata(self, instance_id: str) -> InstanceMetadata:
        return self.inner.read_metadata(instance_id)

    def write_metadata(self, metadata: InstanceMetadata) -> None:
        self.calls.append(("write_metadata", metadata.instance_id))
        self.inner.write_metadata(metadata)

    def close(self) -> None:
        self.inner.close()

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]


# -- the control plane, faked --------------------------------------------------------------


class FakeControlPlane:
    """In-memory stand-in for the control plane's agent endpoints (one host).

    Implements :class:`agents.client.ControlPlane`. Every change to the assignments bumps
    ``generation`` and wakes long-polls; a report showing a domain present flips that
    assignment's ``create`` to False (as the real control plane does), without a bump.
    """

    def __init__(
        self, *, bootstrap_token: str = BOOTSTRAP_TOKEN, clock: FakeClock | None = None
    ) -> None:
        #: With a fake clock an unanswered long-poll advances it instead of blocking
        #: (single-threaded tests); without one it blocks for real (loop tests).
        self.clock = clock
        self._cond = threading.Condition()
        self._token: str | None = bootstrap_token
        self.host_id = str(uuid.uuid4())
        self.secret = f"gch-{uuid.uuid4().hex}"
        self.generation = 1
        self._assignments: dict[str, Assignment] = {}
        self.registrations: list[RegisterRequest] = []
        self.heartbeats: list[Heartbeat] = []
        self.reports: list[StatusReport] = []
        self.polls: list[tuple[int, float]] = []
        self.heartbeat_interval_s = 10.0
        #: The self-fencing lease sent in heartbeat acks (0: never fence).
        self.fence_after_s = 0.0
        #: False models a network partition: every call fails as unreachable.
        self.reachable = True

    # test-side controls

    def assign(self, *assignments: Assignment) -> None:
        """Add or replace assignments (one generation bump)."""
        with self._cond:
            for a in assignments:
                self._assignments[a.instance_id] = a
            self._bump()

    def update(self, instance_id: str, **changes: Any) -> Assignment:
        """Change fields of one assignment (one generation bump)."""
        with self._cond:
            updated = self._assignments[instance_id].model_copy(update=changes)
            self._assignments[instance_id] = updated
            self._bump()
            return updated

    def unassign(self, *instance_ids: str) -> None:
        """Drop assignments (the instance moved elsewhere or was purged)."""
        with self._cond:
            for instance_id in instance_ids:
                self._assignments.pop(instance_id)
            self._bump()

    def current(self, instance_id: str) -> Assignment:
        with self._cond:
            return self._assignments[instance_id]

    def latest(self, instance_id: str) -> InstanceStatus | None:
        """The most recent status reported for an instance."""
        with self._cond:
            for report in reversed(self.reports):
                for status in report.instances:
                    if status.instance_id == instance_id:
                        return status
        return None

    def _bump(self) -> None:
        self.generation += 1
        self._cond.notify_all()

    def _check(self, credential: HostCredential) -> None:
        if not self.reachable:
            raise ControlPlaneError("control plane unreachable (partition)")
        if credential.host_id != self.host_id or credential.credential != self.secret:
            raise AuthenticationFailed("unknown host credential", status=401)

    # ControlPlane protocol

    def register(self, request: RegisterRequest) -> RegisterResponse:
        with self._cond:
            if self._token is None or request.bootstrap_token != self._token:
                raise AuthenticationFailed("bootstrap token unknown or used", status=401)
            self._token = None  # one-time
            self.registrations.append(request)
            return RegisterResponse(
                host_id=self.host_id,
                datacentre="tpe-1",
                credential=self.secret,
                heartbeat_interval_s=self.heartbeat_interval_s,
            )

    def heartbeat(self, credential: HostCredential, heartbeat: Heartbeat) -> HeartbeatAck:
        with self._cond:
            self._check(credential)
            self.heartbeats.append(heartbeat)
            return HeartbeatAck(
                host_state="active",
                heartbeat_interval_s=self.heartbeat_interval_s,
                fence_after_s=self.fence_after_s,
            )

    def assignments(
        self, credential: HostCredential, *, generation: int, wait_s: float
    ) -> AssignmentList:
        with self._cond:
            self._check(credential)
            self.polls.append((generation, wait_s))
            if self.clock is not None:
                if self.generation == generation:
                    self.clock.advance(wait_s)
            else:
                self._cond.wait_for(lambda: self.generation != generation, timeout=wait_s)
            return AssignmentList(
                host_id=credential.host_id,
                generation=self.generation,
                assignments=list(self._assignments.values()),
            )

    def report_status(self, credential: HostCredential, report: StatusReport) -> None:
        with self._cond:
            self._check(credential)
            self.reports.append(report)
            for status in report.instances:
                a = self._assignments.get(status.instance_id)
                if a is not None and status.state in (ActualState.RUNNING, ActualState.STOPPED):
                    self._assignments[a.instance_id] = a.model_copy(update={"create": False})

    def close(self) -> None:
        return None
