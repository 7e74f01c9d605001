"""The host-driver contract: what the agent needs from a hypervisor, and how it fails.

Owns the ``HostDriver`` protocol, the value types it returns (``DomainInfo``,
``PowerState``, ``InstanceMetadata``) and the error classes (``DriverError`` and its
temporary/permanent distinction). The agent depends on this module only; the single
implementation lives in :mod:`agents.drivers.libvirt` (the libvirt test driver gives the
simulated hosts, ``qemu:///...`` the real ones).

Only domains named ``gc-<instance_id>`` are *managed*: a driver never lists, changes or
removes any other domain on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from agents.protocol.v1 import Assignment

#: Prefix of every domain govcloud manages; the rest of the name is the instance id.
DOMAIN_PREFIX = "gc-"


def domain_name(instance_id: str) -> str:
    """The libvirt domain name of an instance: ``gc-<instance_id>``."""
    return f"{DOMAIN_PREFIX}{instance_id}"


def is_managed(name: str) -> bool:
    """Whether a libvirt domain name belongs to govcloud."""
    return name.startswith(DOMAIN_PREFIX) and len(name) > len(DOMAIN_PREFIX)


def instance_id_of(name: str) -> str:
    """The instance id a managed domain name carries (``gc-X`` -> ``X``)."""
    if not is_managed(name):
        raise ValueError(f"domain {name!r} is not managed by govcloud (no {DOMAIN_PREFIX!r})")
    return name[len(DOMAIN_PREFIX) :]


class PowerState(StrEnum):
    """A domain's power state, folded from libvirt's finer states."""

    RUNNING = "running"  # running or blocked on I/O
    PAUSED = "paused"  # paused or suspended to memory; resumable
    SHUTTING_DOWN = "shutting_down"  # graceful shutdown in progress
    STOPPED = "stopped"  # shut off (defined, not running)
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class InstanceMetadata:
    """What govcloud stores inside a domain (the ``<metadata>`` element)."""

    instance_id: str
    name: str
    reboot_seq: int = 0


@dataclass(frozen=True)
class DomainInfo:
    """One managed domain as the driver observed it."""

    instance_id: str
    domain_name: str
    state: PowerState
    metadata: InstanceMetadata
    #: vCPUs and memory (MiB) of the domain: the live sizes while it runs, its persistent
    #: definition while shut off; None when the driver could not tell.
    vcpus: int | None = None
    ram_mib: int | None = None

    @property
    def reboot_seq(self) -> int:
        """The last reboot request applied to this domain."""
        return self.metadata.reboot_seq


class DriverError(Exception):
    """A hypervisor operation failed.

    ``temporary`` errors (lost connection, timeouts, busy resources) are worth retrying
    after a delay; permanent ones (invalid definition, unsupported configuration) are not
    and get reported to the control plane as the instance's fault.
    """

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        instance_id: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.instance_id = instance_id
        #: The hypervisor's own error number (libvirt's ``virErrorNumber``), if any.
        self.code = code

    @property
    def permanent(self) -> bool:
        """Retrying the same request will fail the same way."""
        return not self.temporary


class TemporaryDriverError(DriverError):
    """A failure expected to go away (libvirtd restarting, a timeout, a lock)."""

    def __init__(self, message: str, *, instance_id: str | None = None, code: int | None = None):
        super().__init__(message, temporary=True, instance_id=instance_id, code=code)


class PermanentDriverError(DriverError):
    """A failure that will repeat until the request changes."""

    def __init__(self, message: str, *, instance_id: str | None = None, code: int | None = None):
        super().__init__(message, temporary=False, instance_id=instance_id, code=code)


class DomainNotFound(PermanentDriverError):
    """The instance has no domain on this host."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            f"domain {domain_name(instance_id)} not found on this host",
            instance_id=instance_id,
        )


@runtime_checkable
class HostDriver(Protocol):
    """Everything the agent does to a hypervisor host.

    All methods take instance ids (never raw domain names) and only ever touch
    ``gc-*`` domains. Methods that change state are idempotent where that makes sense:
    ``start`` on a running domain, ``stop`` on a stopped one and ``delete`` on an absent
    one succeed without doing anything.
    """

    @property
    def uri(self) -> str:
        """The hypervisor URI this driver talks to (reported at registration)."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every managed (``gc-*``) domain on the host, defined or running."""
        ...

    def get(self, instance_id: str) -> DomainInfo | None:
        """The instance's domain, or None if the host has none."""
        ...

    def define(self, assignment: Assignment, *, start: bool) -> DomainInfo:
        """Define the domain for ``assignment`` (and start it if ``start``).

        The stored metadata takes ``assignment.reboot_seq``: a freshly booted domain has
        nothing left to reboot. Defining an already-defined instance updates its
        persistent definition (same name, same UUID); a running domain keeps its live
        sizes until it is next booted (the agent only redefines shut-off domains).
        """
        ...

    def start(self, instance_id: str) -> DomainInfo:
        """Make the domain run: boot it if shut off or crashed, resume it if paused."""
        ...

    def stop(self, instance_id: str, *, force: bool = False) -> DomainInfo:
        """Shut the domain off.

        Graceful (ACPI shutdown, then destroy once the driver's stop timeout passes)
        unless ``force``, which destroys (pulls the plug) at once.
        """
        ...

    def reboot(self, instance_id: str, *, hard: bool = False) -> DomainInfo:
        """Reboot a running domain: a guest-cooperative reboot, or a reset if ``hard``."""
        ...

    def delete(self, instance_id: str) -> bool:
        """Destroy and undefine the domain; False if there was none."""
        ...

    def suspend(self, instance_id: str) -> DomainInfo:
        """Pause a running domain (the source side of a move without live migration)."""
        ...

    def can_migrate_to(self, target_uri: str) -> bool:
        """Whether :meth:`migrate` can reach ``target_uri`` (False on the test driver,
        whose hosts are private to their process)."""
        ...

    def migrate(self, instance_id: str, target_uri: str) -> None:
        """Live-migrate the running domain to the hypervisor at ``target_uri``; afterwards
        it runs (persistently defined) there and is gone from this host. Raises
        DriverError and leaves the domain here if the migration fails."""
        ...

    def read_metadata(self, instance_id: str) -> InstanceMetadata:
        """govcloud's metadata stored in the domain (defaults if it has none)."""
        ...

    def write_metadata(self, metadata: InstanceMetadata) -> None:
        """Store ``metadata`` in the domain (both its live and persistent definition)."""
        ...

    def close(self) -> None:
        """Release the hypervisor connection."""
        ...
