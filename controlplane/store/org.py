"""Organisation tree persistence."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from controlplane.domain.evacuation import EvacuationOverride
from controlplane.domain.org import CHILD_KIND, Organisation, OrgKind
from controlplane.schemas.org import OrgDetail, OrgUpdate
from controlplane.store.db import Database, in_subtree
from controlplane.store.quota import ensure_node
from controlplane.store.tables import OrganisationRow

ROOT_CODE = "gov"
ROOT_NAME = "Executive Yuan"


def _model(row: OrganisationRow) -> Organisation:
    return Organisation(
        code=row.code, name=row.name, kind=OrgKind(row.kind), parent=row.parent, path=row.path
    )


def _detail(row: OrganisationRow) -> OrgDetail:
    return OrgDetail(
        **_model(row).model_dump(),
        evacuation_policy=EvacuationOverride(row.evacuation_policy or EvacuationOverride.INHERIT),
    )


def get_row(session: Session, code: str) -> OrganisationRow:
    """The organisation row ``code`` or NotFound."""
    row = session.get(OrganisationRow, code)
    if row is None:
        raise NotFound("org", code)
    return row


class OrgRepo:
    """Create and read nodes of the organisation tree."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_root(self) -> Organisation:
        """Create the root (Executive Yuan) if missing; replicas starting together may race."""
        try:
            return self._ensure_root()
        except Conflict:
            return self.get(ROOT_CODE)

    def _ensure_root(self) -> Organisation:
        with self.db.transaction() as session:
            row = session.get(OrganisationRow, ROOT_CODE)
            if row is None:
                row = OrganisationRow(
                    code=ROOT_CODE,
                    name=ROOT_NAME,
                    kind=OrgKind.ROOT.value,
                    parent=None,
                    path=ROOT_CODE,
                )
                session.add(row)
                session.flush()
            ensure_node(session, ROOT_CODE)
            return _model(row)

    def create(self, code: str, name: str, parent: str) -> Organisation:
        """Add a child under ``parent``; its kind follows from the parent's level."""
        with self.db.transaction() as session:
            if session.get(OrganisationRow, code) is not None:
                raise AlreadyExists("org", code)
            parent_row = get_row(session, parent)
            parent_kind = OrgKind(parent_row.kind)
            if parent_kind not in CHILD_KIND:
                raise InvalidRequest(
                    f"{parent!r} is a project; projects have no children",
                    field="parent",
                    value=parent,
                )
            row = OrganisationRow(
                code=code,
                name=name,
                kind=CHILD_KIND[parent_kind].value,
                parent=parent,
                path=f"{parent_row.path}/{code}",
            )
            session.add(row)
            session.flush()
            ensure_node(session, code)
            return _model(row)

    def get(self, code: str) -> Organisation:
        """One node."""
        with self.db.transaction() as session:
            return _model(get_row(session, code))

    def detail(self, code: str) -> OrgDetail:
        """One node with its settings (a ministry's evacuation override)."""
        with self.db.transaction() as session:
            return _detail(get_row(session, code))

    def update(self, code: str, changes: OrgUpdate) -> OrgDetail:
        """Apply ``changes``; only a ministry has an evacuation policy of its own."""
        with self.db.transaction() as session:
            row = get_row(session, code)
            override = changes.evacuation_policy
            if override is not None:
                if row.kind != OrgKind.MINISTRY.value:
                    raise InvalidRequest(
                        f"{code!r} is a {row.kind}; only a ministry has an evacuation policy "
                        "(its agencies and projects follow it)",
                        field="evacuation_policy",
                        value=override.value,
                    )
                policy = override.policy
                row.evacuation_policy = policy.value if policy is not None else None
            return _detail(row)

    def list(self, scope: str) -> list[Organisation]:
        """Every node in the subtree at ``scope`` (a path), ordered by path."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(OrganisationRow)
                .where(in_subtree(OrganisationRow.path, scope))
                .order_by(OrganisationRow.path)
            )
            return [_model(r) for r in rows]
