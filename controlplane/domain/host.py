"""Hypervisor hosts: capacity, reservations, allocation ratios, traits and state."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from controlplane.domain.names import Code, Name, Trait
from controlplane.domain.resources import Resources


class HostState(StrEnum):
    """Whether a host takes new placements (only ACTIVE does).

    Operators set ACTIVE, MAINTENANCE and DISABLED. DRAINING (set by ``host drain``)
    takes no new placements while its instances are live-migrated away
    (``domain/migration.py``). SUSPECT and DOWN are set by the
    liveness loop (``domain/liveness.py``) when heartbeats stop, and cleared by the next
    heartbeat.
    """

    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    DISABLED = "disabled"
    SUSPECT = "suspect"
    DOWN = "down"
    DRAINING = "draining"


#: States only the liveness loop sets (an operator cannot).
LIVENESS_STATES: frozenset[HostState] = frozenset({HostState.SUSPECT, HostState.DOWN})


class AllocationRatios(BaseModel):
    """Overcommit factors per dimension (Nova's defaults for CPU and RAM)."""

    cpu: float = Field(4.0, gt=0, le=64)
    ram: float = Field(1.0, gt=0, le=16)
    disk: float = Field(1.0, gt=0, le=16)


DEFAULT_RESERVED = Resources(vcpus=0, ram_mib=512, disk_gib=0)


def usable(capacity: Resources, reserved: Resources, ratios: AllocationRatios) -> Resources:
    """What may be allocated: ``floor((capacity - reserved) * ratio)`` per dimension."""
    free = capacity - reserved
    return Resources(
        vcpus=math.floor(free.vcpus * ratios.cpu),
        ram_mib=math.floor(free.ram_mib * ratios.ram),
        disk_gib=math.floor(free.disk_gib * ratios.disk),
    )


class Host(BaseModel):
    """A hypervisor host as the control plane knows it."""

    id: str
    name: Name
    datacentre: Code
    capacity: Resources
    reserved: Resources = DEFAULT_RESERVED
    ratios: AllocationRatios = AllocationRatios()
    traits: list[Trait] = []
    state: HostState = HostState.ACTIVE
    libvirt_uri: str
    used: Resources = Resources()
    generation: int = 0
    last_heartbeat: datetime | None = None
    agent_version: str = ""
    #: Power model for consolidation (W); None: the default of domain/consolidation.py.
    idle_watts: float | None = None
    peak_watts: float | None = None
    #: Why a loop put the host in its state (e.g. "powered down for consolidation ...").
    state_note: str | None = None

    @property
    def usable(self) -> Resources:
        """Allocatable amount under the ratios, after reservations."""
        return usable(self.capacity, self.reserved, self.ratios)

    @property
    def free(self) -> Resources:
        """Allocatable amount not yet claimed."""
        return self.usable - self.used
