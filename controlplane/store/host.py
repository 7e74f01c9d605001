"""Hosts: bootstrap tokens, agent registration, heartbeats, and the fleet snapshot.

A heartbeat is the fleet's most frequent write (every host, every few seconds): the
usual one, from an active host whose capacity did not change and whose credential still
holds, is a single ``UPDATE ... RETURNING`` that also re-verifies the credential, so the
API can keep the agent's principal cached without another look-up; anything else (a host
back from SUSPECT/DOWN, a capacity change) takes the full path.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from agents.protocol.v1 import Heartbeat, RegisterRequest
from controlplane.domain.consolidation import PowerModel
from controlplane.domain.errors import AlreadyExists, NotFound, Unauthenticated
from controlplane.domain.host import (
    DEFAULT_RESERVED,
    LIVENESS_STATES,
    AllocationRatios,
    Host,
    HostState,
    usable,
)
from controlplane.domain.resources import Resources
from controlplane.domain.tokens import hash_token, new_token
from controlplane.scheduler.view import FleetView
from controlplane.store.db import Database
from controlplane.store.fleet_index import fleet_view
from controlplane.store.liveness import back_from_silence
from controlplane.store.tables import BootstrapTokenRow, DataCentreRow, HostRow


def to_model(row: HostRow) -> Host:
    """Row -> domain Host."""
    return Host(
        id=row.id,
        name=row.name,
        datacentre=row.datacentre,
        capacity=Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib),
        reserved=Resources(
            vcpus=row.reserved_vcpus, ram_mib=row.reserved_ram_mib, disk_gib=row.reserved_disk_gib
        ),
        ratios=AllocationRatios(cpu=row.cpu_ratio, ram=row.ram_ratio, disk=row.disk_ratio),
        traits=list(row.traits),
        state=HostState(row.state),
        libvirt_uri=row.libvirt_uri,
        used=Resources(vcpus=row.used_vcpus, ram_mib=row.used_ram_mib, disk_gib=row.used_disk_gib),
        generation=row.generation,
        last_heartbeat=row.last_heartbeat,
        agent_version=row.agent_version,
        idle_watts=row.idle_watts,
        peak_watts=row.peak_watts,
        state_note=row.state_note,
    )


def set_sizes(
    row: HostRow, capacity: Resources, reserved: Resources, ratios: AllocationRatios
) -> None:
    """Write capacity, reservations and ratios, and the derived usable totals."""
    row.vcpus, row.ram_mib, row.disk_gib = capacity.vcpus, capacity.ram_mib, capacity.disk_gib
    row.reserved_vcpus = reserved.vcpus
    row.reserved_ram_mib = reserved.ram_mib
    row.reserved_disk_gib = reserved.disk_gib
    row.cpu_ratio, row.ram_ratio, row.disk_ratio = ratios.cpu, ratios.ram, ratios.disk
    total = usable(capacity, reserved, ratios)
    row.usable_vcpus, row.usable_ram_mib, row.usable_disk_gib = (
        total.vcpus,
        total.ram_mib,
        total.disk_gib,
    )


@dataclass(frozen=True)
class Beat:
    """What an acknowledged heartbeat left: the host's state and capacity, and when."""

    host_id: str
    datacentre: str
    state: HostState
    capacity: Resources
    at: datetime


def bump_assignments(session: Session, host_id: str | None) -> None:
    """Tell the host's agent (via its long-poll) that its assignments changed."""
    if host_id is not None:
        session.flush()  # the session's own changes first, as an ORM statement would
        session.connection().execute(_BUMP_ASSIGNMENTS, {"b_id": host_id})


_BUMP_ASSIGNMENTS = (
    update(HostRow)
    .where(HostRow.id == bindparam("b_id"))
    .values(assign_generation=HostRow.assign_generation + 1)
)
#: The usual heartbeat, built once (building it costs more than running it).
_QUIET_HEARTBEAT = (
    update(HostRow)
    .where(
        HostRow.id == bindparam("b_id"),
        HostRow.credential_hash == bindparam("b_digest"),
        HostRow.state.not_in(sorted(s.value for s in LIVENESS_STATES)),
        HostRow.vcpus == bindparam("b_vcpus"),
        HostRow.ram_mib == bindparam("b_ram_mib"),
        HostRow.disk_gib == bindparam("b_disk_gib"),
    )
    .values(last_heartbeat=bindparam("b_now"), agent_version=bindparam("b_version"))
    .returning(HostRow.datacentre, HostRow.state)
)


class HostRepo:
    """Enrolment and bookkeeping of hypervisor hosts."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def issue_bootstrap_token(
        self, datacentre: str, actor: str, ttl: timedelta = timedelta(hours=24)
    ) -> tuple[str, datetime]:
        """A one-time token with which one agent may register into ``datacentre``."""
        token = new_token("gcb")
        now = self.clock()
        with self.db.transaction() as session:
            if session.get(DataCentreRow, datacentre) is None:
                raise NotFound("dc", datacentre)
            session.add(
                BootstrapTokenRow(
                    token_hash=hash_token(token),
                    datacentre=datacentre,
                    created_by=actor,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token, now + ttl

    def register(
        self,
        request: RegisterRequest,
        reserved: Resources = DEFAULT_RESERVED,
        ratios: AllocationRatios | None = None,
    ) -> tuple[Host, str]:
        """Consume a bootstrap token and create the host; returns it and its credential."""
        now = self.clock()
        credential = new_token("gch")
        with self.db.transaction() as session:
            token = session.get(
                BootstrapTokenRow, hash_token(request.bootstrap_token), with_for_update=True
            )
            if token is None or token.used_at is not None or token.expires_at < now:
                raise Unauthenticated(
                    "bootstrap token is unknown, used or expired; issue a new one with "
                    "`govcloud host token create --dc CODE`"
                )
            if session.scalar(select(HostRow).where(HostRow.name == request.name)) is not None:
                raise AlreadyExists("host", request.name)
            row = HostRow(
                id=str(uuid4()),
                name=request.name,
                datacentre=token.datacentre,
                traits=sorted(set(request.traits)),
                state=HostState.ACTIVE.value,
                libvirt_uri=request.libvirt_uri,
                generation=0,
                assign_generation=1,
                last_heartbeat=now,
                agent_version=request.agent_version,
                credential_hash=hash_token(credential),
                created_at=now,
                used_vcpus=0,
                used_ram_mib=0,
                used_disk_gib=0,
            )
            set_sizes(row, request.capacity, reserved, ratios or AllocationRatios())
            session.add(row)
            token.used_at, token.host_id = now, row.id
            return to_model(row), credential

    def heartbeat(self, host_id: str, beat: Heartbeat) -> Beat:
        """Record liveness; a capacity change re-derives the usable totals."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._row(session, host_id)
            silent_since, row.last_heartbeat = row.last_heartbeat, now
            row.agent_version = beat.agent_version
            if HostState(row.state) in LIVENESS_STATES:
                # Back from SUSPECT/DOWN: to the state the operator left it in (ACTIVE, or
                # DRAINING, its drain having waited meanwhile), and wake the agent so its
                # full status report replaces UNKNOWN with what really runs.
                back_from_silence(row, silent_since)
                row.generation += 1
                row.assign_generation += 1
            current = Resources(vcpus=row.vcpus, ram_mib=row.ram_mib, disk_gib=row.disk_gib)
            if beat.capacity != current:
                host = to_model(row)
                set_sizes(row, beat.capacity, host.reserved, host.ratios)
                row.generation += 1
            return Beat(row.id, row.datacentre, HostState(row.state), beat.capacity, now)

    def quiet_heartbeat(self, host_id: str, beat: Heartbeat, credential_hash: str) -> Beat | None:
        """The usual heartbeat in one conditional UPDATE: it matches only while the host
        holds the credential of digest ``credential_hash``, is not SUSPECT or DOWN and
        reports the capacity it has. None when it matched nothing: authenticate the agent
        again, then call :meth:`heartbeat`."""
        now = self.clock()
        capacity = beat.capacity
        with self.db.transaction() as session:
            found = (
                session.connection()
                .execute(
                    _QUIET_HEARTBEAT,
                    {
                        "b_id": host_id,
                        "b_digest": credential_hash,
                        "b_vcpus": capacity.vcpus,
                        "b_ram_mib": capacity.ram_mib,
                        "b_disk_gib": capacity.disk_gib,
                        "b_now": now,
                        "b_version": beat.agent_version,
                    },
                )
                .first()
            )
        if found is None:
            return None
        return Beat(host_id, found.datacentre, HostState(found.state), capacity, now)

    def get(self, host_id_or_name: str) -> Host:
        """A host by id or name."""
        with self.db.transaction() as session:
            return to_model(self._row(session, host_id_or_name))

    def list(self, datacentre: str | None = None, state: str | None = None) -> list[Host]:
        """Hosts, optionally filtered, ordered by name."""
        query = select(HostRow).order_by(HostRow.name)
        if datacentre:
            query = query.where(HostRow.datacentre == datacentre)
        if state:
            query = query.where(HostRow.state == state)
        with self.db.transaction() as session:
            return [to_model(r) for r in session.scalars(query)]

    def update(
        self,
        host_id: str,
        *,
        state: HostState | None = None,
        ratios: AllocationRatios | None = None,
        reserved: Resources | None = None,
        traits: builtins.list[str] | None = None,
        power: PowerModel | None = None,
    ) -> Host:
        """Change an operator-controlled attribute; lowering capacity never evicts."""
        with self.db.transaction() as session:
            row = self._row(session, host_id)
            host = to_model(row)
            if state is not None:
                row.state = state.value
                row.state_note = None
            if power is not None:
                row.idle_watts, row.peak_watts = power.idle_watts, power.peak_watts
            if traits is not None:
                row.traits = sorted(set(traits))
            if ratios is not None or reserved is not None:
                set_sizes(row, host.capacity, reserved or host.reserved, ratios or host.ratios)
            row.generation += 1
            return to_model(row)

    def assignment_generations(self, host_ids: Iterable[str]) -> dict[str, int]:
        """The long-poll keys of several hosts in one query (unknown ids are left out)."""
        ids = sorted(set(host_ids))
        with self.db.read() as session:
            rows = session.execute(
                select(HostRow.id, HostRow.assign_generation).where(HostRow.id.in_(ids))
            )
            return {str(host_id): int(generation) for host_id, generation in rows}

    def view(self, datacentre: str | None = None) -> FleetView:
        """The scheduler's snapshot in its own transaction."""
        with self.db.transaction() as session:
            return fleet_view(session, datacentre)

    @staticmethod
    def _row(session: Session, ident: str) -> HostRow:
        row = session.get(HostRow, ident) or session.scalar(
            select(HostRow).where(HostRow.name == ident)
        )
        if row is None:
            raise NotFound("host", ident)
        return row
