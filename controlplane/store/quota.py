"""Hierarchical quota enforcement, atomic with placement.

Every transaction that charges or releases quota first locks the ``quota_nodes`` rows of
the instance's path, root first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
serialises writers), then runs the pure ``quotas.check`` on the locked numbers, then writes
the new usage. The fixed root-first order (and host rows after quota rows) rules out
deadlocks; holding the locks to commit rules out any overshoot, whatever the number of
concurrent requests or API replicas.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.instance import InstanceState
from controlplane.domain.org import OrgKind, within
from controlplane.domain.quota import (
    DimensionLimits,
    QuotaChange,
    QuotaDrift,
    QuotaEvent,
    QuotaExceeded,
    QuotaNode,
    QuotaReport,
    instance_usage,
)
from controlplane.domain.resources import Resources
from controlplane.store.db import Database, in_subtree
from controlplane.store.tables import (
    InstanceRow,
    OrganisationRow,
    QuotaEventRow,
    QuotaNodeRow,
)
from quotas import (
    DEFAULT_SOFT_THRESHOLD,
    DIMENSIONS,
    Change,
    Limits,
    Usage,
    check,
    headroom,
    over_limit,
    over_soft_threshold,
    plan,
)


def _limits(row: QuotaNodeRow) -> Limits:
    return Limits(row.limits, soft_threshold=row.soft_threshold)


def ensure_node(session: Session, org: str) -> QuotaNodeRow:
    """The quota row of ``org``, created unlimited with no usage if missing.

    ``INSERT ... ON CONFLICT DO NOTHING``: concurrent first uses of a node cannot collide.
    """
    row = session.get(QuotaNodeRow, org)
    if row is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(QuotaNodeRow)
            .values(org=org, limits={}, soft_threshold=DEFAULT_SOFT_THRESHOLD, usage={})
            .on_conflict_do_nothing(index_elements=["org"])
        )
        row = session.get(QuotaNodeRow, org, populate_existing=True)
        assert row is not None
    return row


#: One bind parameter per level of the organisation tree (root, ministry, agency,
#: project): a fixed ``IN`` list, so the statement is not re-rendered per execution.
_PATH_PARAMS = tuple(f"level{i}" for i in range(len(OrgKind)))
#: Lock the quota rows of a path root first, with their kinds; built once.
#: Core, not ORM: charging is on every create's path, and the values are read and
#: written back once.
_LOCK_PATH = (
    select(
        QuotaNodeRow.org,
        OrganisationRow.kind,
        QuotaNodeRow.usage,
        QuotaNodeRow.limits,
        QuotaNodeRow.soft_threshold,
    )
    .join(OrganisationRow, OrganisationRow.code == QuotaNodeRow.org)
    .where(QuotaNodeRow.org.in_([bindparam(name) for name in _PATH_PARAMS]))
    .order_by(func.length(OrganisationRow.path))
    .with_for_update(of=QuotaNodeRow)
)
_SET_USAGE = (
    update(QuotaNodeRow)
    .where(QuotaNodeRow.org == bindparam("node"))
    .values(usage=bindparam("new_usage"))
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class _Level:
    """One locked quota row of a path."""

    org: str
    kind: str
    usage: Usage
    limits: Limits


def _lock_path(session: Session, org_path: str) -> list[_Level]:
    """Lock the quota rows of every node on ``org_path``, root first; with their kinds.

    One ``SELECT ... ORDER BY depth FOR UPDATE OF quota_nodes``: PostgreSQL locks rows in
    the order the sort emits them, so the root is always locked first. Nodes without a
    quota row yet get one (unlimited) and the select runs again.
    """
    codes = org_path.split("/")
    # A shorter path repeats its last code (IN ignores duplicates).
    params = {name: codes[min(i, len(codes) - 1)] for i, name in enumerate(_PATH_PARAMS)}
    connection = session.connection()
    locked = connection.execute(_LOCK_PATH, params).all()
    if len(locked) < len(codes):
        for code in codes:
            ensure_node(session, code)
        locked = connection.execute(_LOCK_PATH, params).all()
    assert [row.org for row in locked] == codes, "every node on the path has a quota row"
    return [
        _Level(org, kind, Usage(usage), Limits(limits, soft_threshold=soft))
        for org, kind, usage, limits, soft in locked
    ]


def _set_usage(session: Session, usage: Mapping[str, Usage]) -> None:
    """Write the new usage of locked quota rows (one executemany)."""
    session.connection().execute(
        _SET_USAGE, [{"node": org, "new_usage": used.as_dict()} for org, used in usage.items()]
    )


def charge(
    session: Session,
    org_path: str,
    resources: Resources,
    now: datetime,
    instance_id: str,
    count: int = 1,
) -> None:
    """Count ``count`` instances of ``resources`` (the first one ``instance_id``) against
    every level, or raise QuotaExceeded and change nothing."""
    what = f"instance {instance_id}" if count == 1 else f"{count} instances from {instance_id}"
    _move(session, org_path, instance_usage(resources) * count, Usage(), now, what)


def adjust(
    session: Session,
    org_path: str,
    old_resources: Resources,
    new_resources: Resources,
    now: datetime,
    instance_id: str,
) -> None:
    """Change what one instance counts from ``old_resources`` to ``new_resources`` (a
    resize) at every level, or raise QuotaExceeded and change nothing.

    Only the dimensions that grow are checked, as a request of the growth alone; those
    that shrink are released. A level already above a lowered limit in a dimension the
    resize does not grow therefore never blocks it (as for ``charge``).
    """
    before, after = instance_usage(old_resources), instance_usage(new_resources)
    grow = Usage({d: after[d] - before[d] for d in DIMENSIONS if after[d] > before[d]})
    shrink = Usage({d: before[d] - after[d] for d in DIMENSIONS if before[d] > after[d]})
    _move(session, org_path, grow, shrink, now, f"resize of instance {instance_id}")


def _move(
    session: Session, org_path: str, grow: Usage, shrink: Usage, now: datetime, what: str
) -> None:
    """Lock the path root first, check ``grow`` at every level, then add ``grow`` and take
    off ``shrink`` everywhere; record soft-threshold crossings (``what`` names the cause)."""
    locked = _lock_path(session, org_path)
    result = check(
        [level.org for level in locked],
        [level.kind for level in locked],
        grow,
        {level.org: level.usage for level in locked},
        {level.org: level.limits for level in locked},
    )
    if not result.ok:
        raise QuotaExceeded(result.message, [v.to_dict() for v in result.violations])
    _set_usage(session, {level.org: level.usage + grow - shrink for level in locked})
    for warning in result.soft_warnings:
        if warning.crossed:
            session.add(
                QuotaEventRow(
                    time=now,
                    org=warning.node,
                    kind=warning.kind,
                    dimension=warning.dimension,
                    org_path=_path_of(org_path, warning.node),
                    used=warning.used + warning.requested,
                    limit=warning.limit,
                    message=f"{warning.message} ({what})",
                )
            )


def release(session: Session, org_path: str, resources: Resources) -> None:
    """Give back what one instance of ``resources`` counted, at every level."""
    amount = instance_usage(resources)
    _set_usage(
        session, {level.org: level.usage - amount for level in _lock_path(session, org_path)}
    )


def _path_of(org_path: str, node: str) -> str:
    parts = org_path.split("/")
    return "/".join(parts[: parts.index(node) + 1])


Levels = dict[str, tuple[Usage, Limits]]


def _levels_above(session: Session, org_path: str) -> Levels:
    """Usage and limits of the strict ancestors on ``org_path`` (rows not locked)."""
    out: Levels = {}
    for code in org_path.split("/")[:-1]:
        row = session.get(QuotaNodeRow, code)
        if row is not None:
            out[code] = (Usage(row.usage), _limits(row))
    return out


def _view(row: QuotaNodeRow, org: OrganisationRow, above: Levels | None = None) -> QuotaNode:
    """The node as the API shows it; headroom also respects the ancestors in ``above``."""
    usage, limits = Usage(row.usage), _limits(row)
    caps: DimensionLimits = dict(limits.as_dict())
    levels: Levels = {**(above or {}), org.code: (usage, limits)}
    return QuotaNode(
        org=org.code,
        kind=org.kind,
        path=org.path,
        limits=caps,
        soft_threshold=row.soft_threshold,
        usage=usage.as_dict(),
        headroom=headroom(
            list(levels),
            {code: used for code, (used, _) in levels.items()},
            {code: lim for code, (_, lim) in levels.items()},
        ),
        percent_used={
            d: round(100.0 * usage[d] / cap, 1) if cap else (0.0 if usage[d] == 0 else 100.0)
            for d, cap in limits.as_dict().items()
        },
        over_limit=[o.dimension for o in over_limit({org.code: usage}, {org.code: limits})],
        over_soft_threshold=[
            w.dimension for w in over_soft_threshold({org.code: usage}, {org.code: limits})
        ],
    )


class QuotaRepo:
    """Read and change limits; verify and repair usage."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def report(self, org: str, scope: str) -> QuotaReport:
        """``org``'s node (which ``scope`` must contain) and its direct children."""
        with self.db.transaction() as session:
            node = session.get(OrganisationRow, org)
            if node is None or not within(node.path, scope):
                raise NotFound("org", org)
            children = session.scalars(
                select(OrganisationRow)
                .where(OrganisationRow.parent == org)
                .order_by(OrganisationRow.code)
            )
            above = _levels_above(session, node.path)
            row = ensure_node(session, org)
            here: Levels = {**above, org: (Usage(row.usage), _limits(row))}
            return QuotaReport(
                node=_view(row, node, above),
                children=[_view(ensure_node(session, c.code), c, here) for c in children],
            )

    def nodes(self) -> builtins.list[QuotaNode]:
        """Every node that has a quota row (for metrics), ordered by path."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(QuotaNodeRow, OrganisationRow)
                .join(OrganisationRow, OrganisationRow.code == QuotaNodeRow.org)
                .order_by(OrganisationRow.path)
            )
            return [_view(row, org) for row, org in rows]

    def limits(self, scope: str) -> dict[str, Limits]:
        """Current limits of every node in ``scope`` (for planning an apply)."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(QuotaNodeRow, OrganisationRow.path)
                .join(OrganisationRow, OrganisationRow.code == QuotaNodeRow.org)
                .where(in_subtree(OrganisationRow.path, scope))
            )
            return {row.org: _limits(row) for row, _ in rows}

    def apply(self, desired: Mapping[str, Limits], *, dry_run: bool) -> builtins.list[QuotaChange]:
        """Make the named nodes' limits exactly ``desired``; idempotent; returns the diff."""
        with self.db.transaction() as session:
            rows = {org: ensure_node(session, org) for org in desired}
            for org in desired:
                if session.get(OrganisationRow, org) is None:
                    raise NotFound("org", org)
            current = {org: _limits(row) for org, row in rows.items()}
            usage = {org: Usage(row.usage) for org, row in rows.items()}
            changes = plan(current, desired, usage)
            if not dry_run:
                for org, wanted in desired.items():
                    rows[org].limits = dict(wanted.as_dict())
                    rows[org].soft_threshold = wanted.soft_threshold
            return [_change(c) for c in changes]

    def events(self, scope: str, limit: int = 100) -> builtins.list[QuotaEvent]:
        """Soft-threshold crossings in ``scope``, newest first."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(QuotaEventRow)
                .where(in_subtree(QuotaEventRow.org_path, scope))
                .order_by(QuotaEventRow.id.desc())
                .limit(limit)
            )
            return [QuotaEvent.model_validate(r, from_attributes=True) for r in rows]

    def set(
        self, org: str, limits: DimensionLimits, soft_threshold: float | None, *, dry_run: bool
    ) -> builtins.list[QuotaChange]:
        """Change some of ``org``'s limits (``None``: unlimited); the others stay."""
        with self.db.transaction() as session:
            if session.get(OrganisationRow, org) is None:
                raise NotFound("org", org)
            current = _limits(ensure_node(session, org))
        try:
            wanted = current.merged(limits, soft_threshold)
        except ValueError as exc:
            raise InvalidRequest(str(exc), field="limits", value=limits) from exc
        return self.apply({org: wanted}, dry_run=dry_run)

    def verify(self, scope: str, *, repair: bool) -> builtins.list[QuotaDrift]:
        """Recompute usage from live instances; report (and optionally fix) every drift."""
        with self.db.transaction() as session:
            orgs = session.scalars(
                select(OrganisationRow)
                .where(in_subtree(OrganisationRow.path, scope))
                .order_by(OrganisationRow.path)
            ).all()
            rows = {}
            for org in orgs:  # parents before children: the lock order of charge()
                ensure_node(session, org.code)
                rows[org.code] = session.scalar(
                    select(QuotaNodeRow)
                    .where(QuotaNodeRow.org == org.code)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            # Counted only now, under the locks, so no charge can slip in between.
            actual: dict[str, Usage] = {o.code: Usage() for o in orgs}
            live = session.scalars(
                select(InstanceRow).where(
                    InstanceRow.state != InstanceState.DELETED.value,
                    in_subtree(InstanceRow.org_path, scope),
                )
            )
            for inst in live:
                amount = instance_usage(
                    Resources(vcpus=inst.vcpus, ram_mib=inst.ram_mib, disk_gib=inst.disk_gib)
                )
                for code in inst.org_path.split("/"):
                    if code in actual:
                        actual[code] = actual[code] + amount
            drifts = []
            for org in orgs:
                row = rows[org.code]
                assert row is not None
                stored = Usage(row.usage)
                if stored != actual[org.code]:
                    if repair:
                        row.usage = actual[org.code].as_dict()
                    drifts.append(
                        QuotaDrift(
                            org=org.code,
                            stored=stored.as_dict(),
                            actual=actual[org.code].as_dict(),
                            repaired=repair,
                        )
                    )
            return drifts


def _change(change: Change) -> QuotaChange:
    return QuotaChange(
        org=change.org,
        field=change.field,
        old=change.old,
        new=change.new,
        used=change.used,
        below_usage=change.below_usage,
        description=change.describe(),
    )
