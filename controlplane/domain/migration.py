"""Moving instances between hosts: migrations, drains and data-centre evacuations (pure).

A **migration** moves one instance from its source host to a target host:

* ``live`` (same data centre): the source agent is told the target's libvirt URI and
  migrates the running domain there (on real libvirt ``VIR_MIGRATE_LIVE | PEER2PEER |
  PERSIST_DEST | UNDEFINE_SOURCE``). On the libvirt test driver, whose hosts cannot reach
  each other, the same observable states come from a *move*: the source pauses its copy
  and reports ``ready``, then the target defines and starts the domain.
* ``cold`` (across data centres, ``dc evacuate``): the source powers its copy off and
  reports ``ready``; the target defines it and starts it if the tenant wants it running.

Phases (``MigrationPhase``)::

    PREPARING --source ready--> HANDOFF --target RUNNING/STOPPED--> DONE
        |                          |
        +-------- failure ---------+--> FAILED (target claim released, stays on source)

The target claim is taken when the migration starts (one conditional UPDATE, like any
placement). The instance switches ``host_id`` to the target in the same transaction
that releases the source claim, and only once the target reported the domain, so two
running copies never exist: the source copy is removed afterwards (its agent fences what
is no longer assigned to it).

A **drain** empties a host (``host drain``/``maintenance``) or a whole data centre
(``dc evacuate``), a bounded number of migrations at a time; the drain loop advances it
level-based, so it survives control-plane restarts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from controlplane.domain.names import Code

#: Default number of concurrent migrations per drain.
DEFAULT_MAX_PARALLEL = 2
MAX_PARALLEL_LIMIT = 64


class MigrationKind(StrEnum):
    """How the domain moves."""

    LIVE = "live"
    COLD = "cold"


class MigrationPhase(StrEnum):
    """Where a migration is (see the module doc)."""

    PREPARING = "preparing"
    HANDOFF = "handoff"
    DONE = "done"
    FAILED = "failed"


#: Phases in which a migration holds a claim on its target.
IN_FLIGHT: frozenset[MigrationPhase] = frozenset({MigrationPhase.PREPARING, MigrationPhase.HANDOFF})


class Migration(BaseModel):
    """One move of one instance."""

    id: str
    instance_id: str
    instance_name: str = ""
    kind: MigrationKind
    phase: MigrationPhase
    source_host: str
    target_host: str
    source_datacentre: Code
    target_datacentre: Code
    drain_id: str | None = None
    message: str = ""
    requested_by: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class DrainKind(StrEnum):
    """What a drain empties."""

    HOST = "host"
    DATACENTRE = "dc"


class DrainState(StrEnum):
    """Whether a drain is still moving instances."""

    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    #: Finished earlier, then closed: maintenance over, undrained, or superseded.
    ENDED = "ended"


class Drain(BaseModel):
    """Emptying one host, or one data centre into another, with progress."""

    id: str
    kind: DrainKind
    subject: str
    subject_name: str
    target_datacentre: Code | None = None
    max_parallel: int = Field(DEFAULT_MAX_PARALLEL, ge=1, le=MAX_PARALLEL_LIMIT)
    #: The state the host ends in once empty (``draining`` or ``maintenance``).
    end_state: str
    until: datetime | None = None
    reason: str = ""
    maintenance_window: str | None = None
    state: DrainState
    #: Instances on the subject when the drain started, and those still there now.
    total: int = 0
    remaining: int = 0
    in_flight: int = 0
    migrated: int = 0
    failed: int = 0
    #: Why the last pass could not move some instance (no room, group rule...), if so.
    message: str = ""
    created_by: str
    started_at: datetime
    finished_at: datetime | None = None


def batch_size(max_parallel: int, in_flight: int, waiting: int) -> int:
    """How many new migrations a drain pass may start (never above the limit)."""
    return max(0, min(max_parallel - in_flight, waiting))


def kind_for(source_datacentre: str, target_datacentre: str) -> MigrationKind:
    """Live within a data centre, cold across data centres."""
    return MigrationKind.LIVE if source_datacentre == target_datacentre else MigrationKind.COLD
