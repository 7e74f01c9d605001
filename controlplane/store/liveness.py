"""Host liveness sweeps: SUSPECT and DOWN hosts, UNKNOWN instances.

:meth:`LivenessRepo.sweep` is what the liveness loop of every API replica runs each
second. It selects the watched hosts whose last heartbeat is older than the SUSPECT
cutoff, locks them, re-assesses each under the lock (a heartbeat that committed in
between wins) and moves it on. A host going DOWN turns its placed instances UNKNOWN in
the same transaction, with an entry in each instance's action history; the SLA history
records the change, so the downtime counts from that moment. Replicas racing on the same
host are harmless: the second finds nothing left to change. The sweep remembers the
host's administrative state (``hosts.return_state``); the next heartbeat
(``HostRepo.heartbeat`` calls :func:`back_from_silence`) returns the host there (ACTIVE,
or DRAINING, its drain having kept running) and wakes its agent, whose full status report
then replaces UNKNOWN with what really runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from controlplane.domain.host import HostState
from controlplane.domain.instance import InstanceState
from controlplane.domain.liveness import WATCHED, LivenessPolicy, assess, remembered, returns_to
from controlplane.store.db import Database
from controlplane.store.tables import HostRow, InstanceActionRow, InstanceRow

log = logging.getLogger(__name__)
#: Instance states that become UNKNOWN when their host goes DOWN.
PLACED: tuple[str, ...] = tuple(
    s.value
    for s in (
        InstanceState.SCHEDULED,
        InstanceState.BUILDING,
        InstanceState.RUNNING,
        InstanceState.STOPPED,
        InstanceState.ERROR,
    )
)


@dataclass
class SweepReport:
    """Hosts moved by one sweep (names), and the instances made UNKNOWN (ids)."""

    suspect: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class LivenessRepo:
    """Applies :func:`controlplane.domain.liveness.assess` to the fleet."""

    def __init__(self, db: Database, clock: Callable[[], datetime], policy: LivenessPolicy) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy

    def sweep(self) -> SweepReport:
        """Move silent hosts to SUSPECT or DOWN; returns what changed."""
        now = self.clock()
        suspect_before, _ = self.policy.cutoffs(now)
        report = SweepReport()
        with self.db.transaction() as session:
            hosts = session.scalars(
                select(HostRow)
                .where(
                    HostRow.state.in_([s.value for s in WATCHED]),
                    HostRow.last_heartbeat < suspect_before,
                )
                .order_by(HostRow.id)  # one lock order for every replica
                .with_for_update()
            )
            for host in hosts:
                new = assess(HostState(host.state), host.last_heartbeat, now, self.policy)
                if new is None:
                    continue
                log.warning(
                    "host=%s state %s -> %s: last heartbeat %s",
                    host.name,
                    host.state,
                    new.value,
                    host.last_heartbeat,
                )
                kept = remembered(HostState(host.state), _recorded(host))
                host.return_state = kept.value if kept is not None else None
                host.state = new.value
                host.generation += 1
                if new is HostState.SUSPECT:
                    report.suspect.append(host.name)
                    continue
                report.down.append(host.name)
                instances = session.scalars(
                    select(InstanceRow)
                    .where(InstanceRow.host_id == host.id, InstanceRow.state.in_(PLACED))
                    .order_by(InstanceRow.id)
                    .with_for_update()
                )
                for row in instances:
                    row.state, row.updated_at = InstanceState.UNKNOWN.value, now
                    report.unknown.append(row.id)
                    session.add(
                        InstanceActionRow(
                            instance_id=row.id,
                            action="host-down",
                            request_id="liveness",
                            actor="liveness",
                            started_at=now,
                            finished_at=now,
                            result="success",
                            message=(
                                f"host {host.name} stopped reporting (last heartbeat "
                                f"{host.last_heartbeat:%Y-%m-%d %H:%M:%S}); state unknown "
                                "until it reports again"
                            ),
                        )
                    )
        return report


def _recorded(row: HostRow) -> HostState | None:
    return HostState(row.return_state) if row.return_state else None


def back_from_silence(row: HostRow, silent_since: datetime | None) -> None:
    """A SUSPECT/DOWN host reported again (its previous heartbeat at ``silent_since``):
    return it to the state it was left in.

    Called by the heartbeat, in its transaction. A host that was DRAINING goes back to
    DRAINING, so it takes no placements; its drain kept running through the outage (the
    drain loop waits while the host is silent) and carries on moving the instances once
    the agent has reported them again.
    """
    was = row.state
    back = returns_to(_recorded(row))
    row.state, row.return_state = back.value, None
    log.info(
        "host=%s reports again after being %s (silent since %s); back to %s",
        row.name,
        was,
        silent_since,
        back.value,
    )
