"""``lab promote``: move a trial's servers into a production project of its ministry.

One transaction, in the global lock order (instance rows, then quota rows root first):
every live server of the trial's project is charged to the target project's quota chain
(``quota.exceeded`` with the numbers if it does not fit: nothing moves) and released from
the trial's, then re-homed (project, org path). The servers keep their hosts and power
state; membership of a trial server group is dropped (groups belong to a project). A
``promoted`` event goes into the trial's history; the API call itself is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from controlplane.domain.errors import InvalidRequest, InvalidState, NotFound
from controlplane.domain.instance import InstanceState
from controlplane.domain.lab import TrialState
from controlplane.domain.org import OrgKind, within
from controlplane.domain.resources import Resources
from controlplane.lab.scenario import RunState
from controlplane.store import quota
from controlplane.store.db import Database
from controlplane.store.lab_rows import add_event, trial_row
from controlplane.store.tables import (
    InstanceRow,
    LabRunRow,
    OrganisationRow,
)

#: Trials whose servers may be promoted (an expired trial's servers are stopped but kept).
PROMOTABLE = frozenset(
    {TrialState.ACTIVE.value, TrialState.EXPIRING.value, TrialState.EXPIRED.value}
)
_GONE = (InstanceState.DELETED.value, InstanceState.DELETING.value)


def promote(
    db: Database, clock: Callable[[], datetime], trial_id: str, project: str, *, actor: str
) -> list[str]:
    """Move the trial's live servers into ``project``; returns their ids."""
    now = clock()
    with db.transaction() as session:
        trial = trial_row(session, trial_id, lock=True)
        if trial.state not in PROMOTABLE or not trial.project_path:
            raise InvalidState(
                f"trial {trial_id} is {trial.state}; only an active, expiring or expired "
                "trial's servers can be promoted",
                code="trial.not_promotable",
                state=trial.state,
            )
        busy = session.scalar(
            select(LabRunRow.id).where(
                LabRunRow.trial_id == trial_id,
                LabRunRow.state.in_([s.value for s in RunState if s.active]),
            )
        )
        if busy is not None:
            raise InvalidState(
                f"scenario run {busy} of trial {trial_id} is in progress; wait for it or "
                "cancel it first",
                code="lab_run.busy",
                run=busy,
            )
        target = session.get(OrganisationRow, project)
        if target is None or not within(target.path, trial.ministry_path):
            raise NotFound("org", project)
        if target.kind != OrgKind.PROJECT.value:
            raise InvalidRequest(
                f"to: {project!r} is a {target.kind}; servers are promoted into a project",
                field="to",
                value=project,
                limit="a project of " + trial.ministry,
            )
        rows = list(
            session.scalars(
                select(InstanceRow)
                .where(
                    InstanceRow.org_path == trial.project_path,
                    InstanceRow.state.not_in(_GONE),
                )
                .order_by(InstanceRow.id)
                .with_for_update()
            )
        )
        if not rows:
            raise InvalidRequest(
                f"trial {trial_id} has no live servers to promote",
                field="trial",
                value=trial_id,
                limit="at least 1 server",
            )
        sizes = [Resources(vcpus=r.vcpus, ram_mib=r.ram_mib, disk_gib=r.disk_gib) for r in rows]
        for row, size in zip(rows, sizes, strict=True):
            quota.charge(session, target.path, size, now, row.id)
        for row, size in zip(rows, sizes, strict=True):
            quota.release(session, trial.project_path, size)
            row.project, row.org_path = target.code, target.path
            row.server_group_id = None
            row.updated_at = now
        add_event(
            session,
            trial,
            now,
            "promoted",
            actor,
            f"{len(rows)} server(s) promoted into project {target.path}",
            project=target.code,
            instances=[r.id for r in rows],
        )
        return [r.id for r in rows]
