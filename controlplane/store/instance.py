"""Instances: :class:`InstanceRepo` (``store.instances``), made of one part per noun.

- :mod:`~controlplane.store.instance_base`     settings, metrics hook, hints, row helpers
- :mod:`~controlplane.store.instance_placing`  committing a plan, anti-starvation
- :mod:`~controlplane.store.instance_create`   creation (one decision, one transaction)
- :mod:`~controlplane.store.instance_retries`  pending retries and the dry run
- :mod:`~controlplane.store.instance_actions`  start, stop, reboot, delete, resize
- :mod:`~controlplane.store.instance_agent`    assignments and agent status reports

This module adds the reads (get, list, action history).
"""

from __future__ import annotations

import builtins

from sqlalchemy import select

from controlplane.domain.errors import NotFound
from controlplane.domain.instance import (
    Instance,
    InstanceAction,
)
from controlplane.domain.org import within
from controlplane.store.db import in_subtree
from controlplane.store.instance_actions import InstanceActions
from controlplane.store.instance_agent import InstanceAgentSide, StatusOutcome
from controlplane.store.instance_base import Hints, S, Scheduler, host_name_of, to_model
from controlplane.store.instance_create import InstanceCreation
from controlplane.store.instance_retries import InstanceRetries
from controlplane.store.org import get_row as get_org_row
from controlplane.store.tables import (
    HostRow,
    InstanceActionRow,
    InstanceRow,
)

__all__ = ["Hints", "InstanceRepo", "Scheduler", "StatusOutcome"]


class InstanceRepo(InstanceCreation, InstanceRetries, InstanceActions, InstanceAgentSide):
    """Everything that changes an instance row goes through here."""

    # -- reads --------------------------------------------------------------------------

    def get(self, instance_id: str, scope: str) -> Instance:
        """One instance the caller (scoped to ``scope``) may see, else NotFound."""
        with self.db.read() as session:
            row = self._visible_row(session, instance_id, scope)
            return to_model(row, host_name_of(session, row.host_id))

    def list(
        self,
        scope: str,
        *,
        state: str | None = None,
        datacentre: str | None = None,
        host: str | None = None,
        org: str | None = None,
        name: str | None = None,
        limit: int = 100,
        marker: str | None = None,
    ) -> list[Instance]:
        """Instances in ``scope``'s subtree (or ``org``'s, inside it), oldest first.

        DELETED instances are listed only when ``state="DELETED"`` is asked for.
        """
        query = (
            select(InstanceRow, HostRow.name)
            .outerjoin(HostRow, HostRow.id == InstanceRow.host_id)
            .where(in_subtree(InstanceRow.org_path, scope))
        )
        if state:
            query = query.where(InstanceRow.state == state)
        else:
            query = query.where(InstanceRow.state != S.DELETED.value)
        if datacentre:
            query = query.where(InstanceRow.datacentre == datacentre)
        if host:
            query = query.where((HostRow.name == host) | (HostRow.id == host))
        if name:
            query = query.where(InstanceRow.name == name)
        with self.db.read() as session:
            if org:
                org_path = get_org_row(session, org).path
                if not within(org_path, scope):
                    raise NotFound("org", org)
                query = query.where(in_subtree(InstanceRow.org_path, org_path))
            if marker:
                after = self._visible_row(session, marker, scope)
                query = query.where(
                    (InstanceRow.created_at > after.created_at)
                    | ((InstanceRow.created_at == after.created_at) & (InstanceRow.id > after.id))
                )
            rows = session.execute(
                query.order_by(InstanceRow.created_at, InstanceRow.id).limit(limit)
            )
            return [to_model(r, h) for r, h in rows]

    def actions(self, instance_id: str, scope: str) -> builtins.list[InstanceAction]:
        """The instance's action history, oldest first."""
        with self.db.read() as session:
            self._visible_row(session, instance_id, scope)
            rows = session.scalars(
                select(InstanceActionRow)
                .where(InstanceActionRow.instance_id == instance_id)
                .order_by(InstanceActionRow.id)
            )
            return [InstanceAction.model_validate(r, from_attributes=True) for r in rows]
