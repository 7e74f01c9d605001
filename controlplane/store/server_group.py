"""Server groups: create, read, delete, and what placement needs of them (the group's
members per host, and the group row lock that serialises placements under hard rules).

Lock order (global, to rule out deadlocks): instance rows, quota rows root first, then the
server-group row (``lock``), then host rows in ascending id order.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, InvalidRequest, InvalidState, NotFound
from controlplane.domain.instance import CLAIMING, InstanceState
from controlplane.domain.org import OrgKind, within
from controlplane.domain.server_group import GroupPolicy, ServerGroup
from controlplane.scheduler.view import GroupView
from controlplane.store.db import Database, in_subtree
from controlplane.store.org import get_row as get_org_row
from controlplane.store.tables import InstanceRow, ServerGroupRow

_CLAIMING = [s.value for s in CLAIMING]
_LIVE = InstanceRow.state != InstanceState.DELETED.value


def _model(row: ServerGroupRow, members: list[str]) -> ServerGroup:
    return ServerGroup(
        id=row.id,
        name=row.name,
        project=row.project,
        org_path=row.org_path,
        policy=GroupPolicy(row.policy),
        max_per_host=row.max_per_host,
        members=members,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _members(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(
            select(InstanceRow.id)
            .where(InstanceRow.server_group_id == group_id, _LIVE)
            .order_by(InstanceRow.created_at, InstanceRow.id)
        )
    )


def members_by_host(session: Session, group_id: str) -> dict[str, int]:
    """Host id -> members holding a claim there (what the hard rules count)."""
    rows = session.execute(
        select(InstanceRow.host_id, func.count())
        .where(
            InstanceRow.server_group_id == group_id,
            InstanceRow.state.in_(_CLAIMING),
            InstanceRow.host_id.is_not(None),
        )
        .group_by(InstanceRow.host_id)
    )
    return {host: n for host, n in rows if host is not None}


def group_view(session: Session, row: ServerGroupRow) -> GroupView:
    """The scheduler's view of the group (members per host, read now)."""
    return GroupView(
        id=row.id,
        name=row.name,
        policy=GroupPolicy(row.policy),
        max_per_host=row.max_per_host,
        members=members_by_host(session, row.id),
    )


def lock(session: Session, group_id: str) -> ServerGroupRow:
    """Lock the group row until commit (``SELECT ... FOR UPDATE``; SQLite serialises
    writers anyway) and return it fresh."""
    row = session.scalar(
        select(ServerGroupRow)
        .where(ServerGroupRow.id == group_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("server_group", group_id)
    return row


def find(session: Session, ident: str, project: str) -> ServerGroupRow:
    """The group ``ident`` (id, or name within ``project``) that ``project``'s instances
    may join; NotFound for another project's group (no existence leak)."""
    row = session.get(ServerGroupRow, ident) or session.scalar(
        select(ServerGroupRow).where(
            ServerGroupRow.project == project, ServerGroupRow.name == ident
        )
    )
    if row is None or row.project != project:
        raise NotFound("server_group", ident)
    return row


class ServerGroupRepo:
    """Server groups, scoped by the organisation tree like instances."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def create(
        self,
        *,
        name: str,
        project: str,
        policy: GroupPolicy,
        max_per_host: int | None,
        actor: str,
    ) -> ServerGroup:
        """A new, empty group in ``project``."""
        if max_per_host is not None and policy is not GroupPolicy.ANTI_AFFINITY:
            raise InvalidRequest(
                f"max_per_host applies to anti-affinity groups only, not {policy.value}",
                field="max_per_host",
                value=max_per_host,
                policy=policy.value,
            )
        with self.db.transaction() as session:
            org = get_org_row(session, project)
            if org.kind != OrgKind.PROJECT.value:
                raise InvalidRequest(
                    f"server groups belong to projects; {project!r} is a {org.kind}",
                    field="project",
                    value=project,
                )
            taken = session.scalar(
                select(ServerGroupRow.id).where(
                    ServerGroupRow.project == project, ServerGroupRow.name == name
                )
            )
            if taken is not None:
                raise AlreadyExists("server_group", name)
            row = ServerGroupRow(
                id=str(uuid4()),
                name=name,
                project=project,
                org_path=org.path,
                policy=policy.value,
                max_per_host=max_per_host,
                created_by=actor,
                created_at=self.clock(),
            )
            session.add(row)
            return _model(row, [])

    def get(self, group_id: str, scope: str) -> ServerGroup:
        """One group the caller may see (by id), else NotFound."""
        with self.db.transaction() as session:
            row = self._visible(session, group_id, scope)
            return _model(row, _members(session, row.id))

    def list(self, scope: str, project: str | None = None) -> builtins.list[ServerGroup]:
        """Groups in the caller's subtree (optionally one project's), by project and name."""
        query = select(ServerGroupRow).where(in_subtree(ServerGroupRow.org_path, scope))
        if project is not None:
            query = query.where(ServerGroupRow.project == project)
        with self.db.transaction() as session:
            rows = session.scalars(query.order_by(ServerGroupRow.project, ServerGroupRow.name))
            return [_model(r, _members(session, r.id)) for r in rows]

    def delete(self, group_id: str, scope: str) -> None:
        """Delete an empty group; refused while live instances belong to it."""
        with self.db.transaction() as session:
            row = self._visible(session, group_id, scope)
            lock(session, row.id)
            members = _members(session, row.id)
            if members:
                raise InvalidState(
                    f"server group {row.name!r} still has {len(members)} live member(s); "
                    "delete them first",
                    code="server_group.in_use",
                    in_use=len(members),
                    limit=0,
                )
            session.delete(row)

    @staticmethod
    def _visible(session: Session, ident: str, scope: str) -> ServerGroupRow:
        row = session.get(ServerGroupRow, ident)
        if row is None or not within(row.org_path, scope):
            raise NotFound("server_group", ident)
        return row
