"""Cloud Open Lab vendors: the Lab's organisation (``openlab``, created on first use) and
one agency node per vendor under it, with the vendor's people.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, InvalidRequest
from controlplane.domain.lab import LAB_ORG, LAB_ORG_NAME, Vendor, VendorNotFound
from controlplane.domain.org import OrgKind
from controlplane.store.lab_rows import LabBase, people_in
from controlplane.store.org import ROOT_CODE
from controlplane.store.quota import ensure_node
from controlplane.store.tables import LabVendorRow, OrganisationRow


class LabVendors(LabBase):
    """Vendors of the Lab."""

    def _ensure_lab_org(self, session: Session) -> OrganisationRow:
        row = session.get(OrganisationRow, LAB_ORG)
        if row is None:
            row = OrganisationRow(
                code=LAB_ORG,
                name=LAB_ORG_NAME,
                kind=OrgKind.MINISTRY.value,
                parent=ROOT_CODE,
                path=f"{ROOT_CODE}/{LAB_ORG}",
            )
            session.add(row)
            session.flush()
            ensure_node(session, LAB_ORG)
        elif row.kind != OrgKind.MINISTRY.value or row.parent != ROOT_CODE:
            raise InvalidRequest(
                f"organisation {LAB_ORG!r} exists but is not a ministry-level node under the "
                "root; the Cloud Open Lab needs it",
                field="org",
                value=row.path,
            )
        return row

    def create_vendor(self, code: str, name: str, actor: str) -> Vendor:
        """A vendor and its organisation node under the Lab (created on first use)."""
        now = self.clock()
        with self.db.transaction() as session:
            if session.get(LabVendorRow, code) is not None:
                raise AlreadyExists("vendor", code)
            if session.get(OrganisationRow, code) is not None:
                raise AlreadyExists("org", code)
            lab = self._ensure_lab_org(session)
            org = OrganisationRow(
                code=code,
                name=name,
                kind=OrgKind.AGENCY.value,
                parent=lab.code,
                path=f"{lab.path}/{code}",
            )
            session.add(org)
            session.flush()
            ensure_node(session, code)
            row = LabVendorRow(
                code=code, name=name, org_path=org.path, created_by=actor, created_at=now
            )
            session.add(row)
            session.flush()
            return self._vendor(session, row)

    def _vendor(self, session: Session, row: LabVendorRow) -> Vendor:
        return Vendor(
            code=row.code,
            name=row.name,
            org_path=row.org_path,
            users=sorted(people_in(session, row.org_path)),
            created_at=row.created_at,
        )

    def vendors(self) -> list[Vendor]:
        """Every vendor, by code."""
        with self.db.transaction() as session:
            rows = session.scalars(select(LabVendorRow).order_by(LabVendorRow.code)).all()
            return [self._vendor(session, r) for r in rows]

    def vendor(self, code: str) -> Vendor:
        """One vendor, or VendorNotFound."""
        with self.db.transaction() as session:
            row = session.get(LabVendorRow, code)
            if row is None:
                raise VendorNotFound(code)
            return self._vendor(session, row)
