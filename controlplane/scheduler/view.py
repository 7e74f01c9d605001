"""The scheduler's inputs: an immutable snapshot of hosts and a placement request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from controlplane.domain.host import HostState
from controlplane.domain.resources import Resources


class HostView(BaseModel):
    """What the scheduler knows about one host at snapshot time."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    datacentre: str
    datacentre_active: bool = True
    state: HostState
    traits: frozenset[str] = frozenset()
    usable: Resources
    used: Resources
    generation: int = 0

    @property
    def free(self) -> Resources:
        """Unclaimed allocatable amounts."""
        return self.usable - self.used


FleetView = tuple[HostView, ...]


class PlacementRequest(BaseModel):
    """What one instance needs."""

    model_config = ConfigDict(frozen=True)

    resources: Resources
    datacentre: str | None = None
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
