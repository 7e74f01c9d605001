"""Server groups: project-scoped sets of instances with a placement rule.

Hard rules (``affinity``: every member on one host; ``anti-affinity``: at most
``max_per_host`` members, default 1, per host) are enforced inside the atomic placement
commit, so concurrent requests cannot break them. Soft rules (``soft-affinity``,
``soft-anti-affinity``) only change how hosts are ranked.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from controlplane.domain.names import Code, Name


class GroupPolicy(StrEnum):
    """The placement rule of a server group."""

    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"

    @property
    def hard(self) -> bool:
        """Whether the rule is enforced (a host breaking it is rejected)."""
        return self in (GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY)


#: Largest ``max_per_host`` accepted.
MAX_PER_HOST_LIMIT = 1000


class ServerGroup(BaseModel):
    """A server group and its live members (instance ids, oldest first)."""

    id: str
    name: Name
    project: Code
    org_path: str
    policy: GroupPolicy
    #: Anti-affinity only: how many members one host may hold (default 1).
    max_per_host: int | None = Field(None, ge=1, le=MAX_PER_HOST_LIMIT)
    members: list[str] = []
    created_by: str
    created_at: datetime

    def per_host_cap(self) -> int | None:
        """How many members one host may hold under the hard rule (None: no cap)."""
        if self.policy is GroupPolicy.ANTI_AFFINITY:
            return self.max_per_host or 1
        return None
