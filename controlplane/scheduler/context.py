"""The state of one decision while it is being made: the demand as plain ints, and what
this decision has already placed (claims and group members per host).

Checks and scores read a host (immutable snapshot) together with this context, so placing
``count`` instances on one snapshot sees the room and the group members taken by the
earlier instances of the same decision. The per-host methods (``free``, ``in_use``,
``copies``) are the readable definitions; the ``*_columns`` methods give the same values
for a whole :class:`~controlplane.scheduler.fleet.Fleet` as numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controlplane.domain.server_group import GroupPolicy
from controlplane.scheduler.fleet import Bools, Fleet, Ints, Positions
from controlplane.scheduler.fleet import at as columns_at
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

    # -- the same, for a whole fleet at once ----------------------------------------------

    def demand(self) -> Ints:
        """The demand per instance as a ``(3, 1)`` column (broadcasts over a fleet)."""
        return np.array([[self.vcpus], [self.ram_mib], [self.disk_gib]], np.int64)

    def used_columns(self, fleet: Fleet) -> Ints:
        """``(3, N)``: each host's snapshot claims plus this decision's (no copy when this
        decision has claimed nothing)."""
        if not self.claimed:
            return fleet.used
        used = fleet.used.copy()
        for host_id, claim in self.claimed.items():
            position = fleet.position(host_id)
            if position is not None:
                used[:, position] += claim
        return used

    def claimed_columns(self, fleet: Fleet) -> Bools:
        """Whether this decision has claimed on each host."""
        claimed = np.zeros(len(fleet), np.bool_)
        for host_id in self.claimed:
            position = fleet.position(host_id)
            if position is not None:
                claimed[position] = True
        return claimed

    def member_columns(self, fleet: Fleet) -> Ints:
        """Group members on each host (snapshot and this decision)."""
        members = np.zeros(len(fleet), np.int64)
        for host_id, n in self.members.items():
            position = fleet.position(host_id)
            if position is not None:
                members[position] = n
        return members

    def copies_columns(self, fleet: Fleet, at: Positions) -> Ints:
        """:meth:`copies` of the hosts at positions ``at``."""
        free = columns_at(fleet.usable, at) - columns_at(self.used_columns(fleet), at)
        fits = np.full(len(at), 1 << 30, np.int64)
        for row, need in enumerate((self.vcpus, self.ram_mib, self.disk_gib)):
            if need > 0:
                np.minimum(fits, free[row] // need, out=fits)
        if self.group_cap is not None:
            np.minimum(fits, self.group_cap - self.member_columns(fleet)[at], out=fits)
        return np.maximum(fits, 0)
