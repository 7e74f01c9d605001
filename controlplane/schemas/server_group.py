"""Server group requests."""

from __future__ import annotations

from pydantic import Field

from controlplane.domain.names import Code, Name
from controlplane.domain.server_group import MAX_PER_HOST_LIMIT, GroupPolicy
from controlplane.schemas.common import Strict


class ServerGroupCreate(Strict):
    """A new server group in ``project``; ``max_per_host`` only for anti-affinity."""

    name: Name
    project: Code
    policy: GroupPolicy
    max_per_host: int | None = Field(None, ge=1, le=MAX_PER_HOST_LIMIT)
