"""Cloud Open Lab catalogue: the certified offerings, with their evidence, sign-offs,
measured results and final usage, that any ministry may reuse without re-testing.
"""

from __future__ import annotations

from sqlalchemy import select

from controlplane.domain.lab import CatalogEntry, Stage, TrialUsage
from controlplane.store.lab_rows import LabBase, evidence_of, signoffs_of
from controlplane.store.tables import LabTrialRow, LabVendorRow


class LabCatalog(LabBase):
    """The catalogue of certified offerings."""

    def catalog(self, trial_id: str | None = None) -> list[tuple[CatalogEntry, str]]:
        """Certified offerings (with their vendor's path), newest first."""
        query = (
            select(LabTrialRow, LabVendorRow.name)
            .join(LabVendorRow, LabVendorRow.code == LabTrialRow.vendor)
            .where(LabTrialRow.stage == Stage.CERTIFIED.value)
            .order_by(LabTrialRow.certified_at.desc(), LabTrialRow.id)
        )
        if trial_id is not None:
            query = query.where(LabTrialRow.id == trial_id)
        out = []
        with self.db.transaction() as session:
            for row, vendor_name in session.execute(query).all():
                evidence = evidence_of(session, row.id)
                order = list(Stage)
                results: dict[str, float] = {}
                for ev in sorted(evidence, key=lambda e: (order.index(e.stage), e.id)):
                    results.update(ev.results)
                assert row.certified_at is not None
                assert row.certified_by is not None
                entry = CatalogEntry(
                    trial_id=row.id,
                    offering=row.offering,
                    description=row.description,
                    vendor=row.vendor,
                    vendor_name=vendor_name,
                    certified_for=row.ministry,
                    template=row.template,
                    certified_at=row.certified_at,
                    certified_by=row.certified_by,
                    signoffs=signoffs_of(session, row.id),
                    evidence=evidence,
                    results=results,
                    usage=TrialUsage.model_validate(row.final_usage) if row.final_usage else None,
                )
                out.append((entry, row.vendor_path))
        return out
