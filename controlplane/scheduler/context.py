"""The state of one decision while it is being made: the demand as plain ints, and what
this decision has already placed (claims and group members per host).

Checks and scores read a host (immutable snapshot) together with this context, so placing
``count`` instances on one snapshot sees the room and the group members taken by the
earlier instances of the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler.view import HostView, PlacementRequest


@dataclass(slots=True)
class Context:
    """Demand per instance, plus this decision's own claims so far."""

    vcpus: int
    ram_mib: int
    disk_gib: int
    datacentre: str | None
    required: frozenset[str]
    forbidden: frozenset[str]
    group_policy: GroupPolicy | None
    group_cap: int | None
    #: host id -> (vcpus, ram_mib, disk_gib) claimed by this decision.
    claimed: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: host id -> group members there (snapshot + this decision).
    members: dict[str, int] = field(default_factory=dict)
    total_members: int = 0

    @classmethod
    def of(cls, request: PlacementRequest) -> Context:
        """The context before anything of ``request`` is placed."""
        group = request.group
        members = dict(group.members) if group is not None else {}
        return cls(
            vcpus=request.resources.vcpus,
            ram_mib=request.resources.ram_mib,
            disk_gib=request.resources.disk_gib,
            datacentre=request.datacentre,
            required=request.required_traits,
            forbidden=request.forbidden_traits,
            group_policy=group.policy if group is not None else None,
            group_cap=group.cap if group is not None else None,
            members=members,
            total_members=sum(members.values()),
        )

    def free(self, host: HostView) -> tuple[int, int, int]:
        """What is left on ``host`` after its snapshot claims and this decision's."""
        c = self.claimed.get(host.id)
        if c is None:
            return (
                host.usable_vcpus - host.used_vcpus,
                host.usable_ram_mib - host.used_ram_mib,
                host.usable_disk_gib - host.used_disk_gib,
            )
        return (
            host.usable_vcpus - host.used_vcpus - c[0],
            host.usable_ram_mib - host.used_ram_mib - c[1],
            host.usable_disk_gib - host.used_disk_gib - c[2],
        )

    def in_use(self, host: HostView) -> bool:
        """Whether ``host`` holds anything (before or by this decision)."""
        return bool(host.used_vcpus or host.used_ram_mib or host.used_disk_gib) or (
            host.id in self.claimed
        )

    def copies(self, host: HostView) -> int:
        """How many more instances of the demand fit on ``host`` (capacity and group cap)."""
        demand = (self.vcpus, self.ram_mib, self.disk_gib)
        pairs = zip(self.free(host), demand, strict=True)
        fits = min((f // d for f, d in pairs if d > 0), default=1 << 30)
        if self.group_cap is not None:
            fits = min(fits, self.group_cap - self.members.get(host.id, 0))
        return max(fits, 0)

    def claim(self, host: HostView) -> None:
        """Record one instance placed on ``host`` by this decision."""
        c = self.claimed.get(host.id, (0, 0, 0))
        self.claimed[host.id] = (c[0] + self.vcpus, c[1] + self.ram_mib, c[2] + self.disk_gib)
        if self.group_policy is not None:
            self.members[host.id] = self.members.get(host.id, 0) + 1
            self.total_members += 1
