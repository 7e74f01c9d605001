"""What SLA accounting reads: one instance's recorded state changes, oldest first.

States are plain strings (the values of :class:`controlplane.domain.instance.InstanceState`
and any state added later, such as ``UNKNOWN`` for an instance on a DOWN host): every
state other than ``RUNNING`` counts as down while the instance is eligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

RUNNING = "RUNNING"
#: States counted as up: RUNNING, and MIGRATING (a live migration keeps the guest running;
#: see domain/migration.py).
UP: frozenset[str] = frozenset({RUNNING, "MIGRATING"})
ERROR = "ERROR"
#: States after which the tenant no longer wants the instance (never eligible).
GONE: frozenset[str] = frozenset({"DELETING", "DELETED"})
#: ``desired_power`` value meaning the tenant wants the instance running.
WANTED = "running"


@dataclass(frozen=True, slots=True)
class StateEvent:
    """From ``at`` on, the instance is in ``state`` on ``host_id`` (in ``datacentre``) and
    its tenant wants its power to be ``desired_power`` (``running`` or ``stopped``)."""

    at: datetime
    state: str
    desired_power: str
    host_id: str | None = None
    datacentre: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceHistory:
    """One instance and its events (sorted by time; the first is its creation)."""

    instance_id: str
    name: str
    org_path: str
    created_at: datetime
    events: tuple[StateEvent, ...]

    @property
    def ministry(self) -> str:
        """The ministry code of the instance's project."""
        parts = self.org_path.split("/")
        return parts[1] if len(parts) > 1 else ""
