"""The scheduler's inputs: an immutable snapshot of hosts, the server group a request
joins, and the request itself.

Hosts are frozen slotted dataclasses of plain ints (no validation per host): a snapshot of
10,000 hosts is built in milliseconds. ``Resources`` views are offered as properties for
explanations and tests, never on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources
from controlplane.domain.server_group import GroupPolicy

#: Host states that take new placements. The host lifecycle work adds states (suspect,
#: draining, ...) that are simply absent from this set.
SCHEDULABLE: frozenset[str] = frozenset({HostState.ACTIVE.value})


@dataclass(frozen=True, slots=True)
class HostView:
    """What the scheduler knows about one host at snapshot time (plain ints)."""

    id: str
    name: str
    datacentre: str
    state: str
    usable_vcpus: int
    usable_ram_mib: int
    usable_disk_gib: int
    used_vcpus: int = 0
    used_ram_mib: int = 0
    used_disk_gib: int = 0
    traits: frozenset[str] = frozenset()
    datacentre_active: bool = True
    generation: int = 0

    @classmethod
    def of(
        cls,
        id: str,
        name: str,
        datacentre: str,
        state: str,
        usable: Resources,
        used: Resources = Resources(),
        **rest: object,
    ) -> HostView:
        """Build from ``Resources`` vectors (tests and tools)."""
        return cls(
            id,
            name,
            datacentre,
            str(state),
            usable.vcpus,
            usable.ram_mib,
            usable.disk_gib,
            used.vcpus,
            used.ram_mib,
            used.disk_gib,
            **rest,  # type: ignore[arg-type]
        )

    @property
    def usable(self) -> Resources:
        """Allocatable totals."""
        return Resources(
            vcpus=self.usable_vcpus, ram_mib=self.usable_ram_mib, disk_gib=self.usable_disk_gib
        )

    @property
    def used(self) -> Resources:
        """Claimed amounts."""
        return Resources(
            vcpus=self.used_vcpus, ram_mib=self.used_ram_mib, disk_gib=self.used_disk_gib
        )

    @property
    def free(self) -> Resources:
        """Unclaimed allocatable amounts (never negative)."""
        return self.usable - self.used


FleetView = tuple[HostView, ...]


@dataclass(frozen=True, slots=True)
class GroupView:
    """A server group at snapshot time: its rule and how many members each host holds."""

    id: str
    name: str
    policy: GroupPolicy
    max_per_host: int | None = None
    #: host id -> live members placed there.
    members: Mapping[str, int] = field(default_factory=dict)

    @property
    def cap(self) -> int | None:
        """Members one host may hold under a hard rule (anti-affinity), else None."""
        if self.policy is GroupPolicy.ANTI_AFFINITY:
            return self.max_per_host or 1
        return None


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """What a decision must place: ``count`` instances of ``resources`` each."""

    resources: Resources
    datacentre: str | None = None
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    count: int = 1
    policy: PlacementPolicy = PlacementPolicy.SPREAD
    group: GroupView | None = None
