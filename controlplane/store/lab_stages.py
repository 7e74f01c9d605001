"""Cloud Open Lab stages: evidence attached to a trial's current stage (a checksum once
per stage) and the sign-offs that move it PoC -> Verification -> Certification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import select

from controlplane.domain.errors import AlreadyExists
from controlplane.domain.lab import Evidence, EvidenceKind, Signoff, Stage, Trial, TrialState
from controlplane.lab import lifecycle, stages
from controlplane.store.lab_rows import (
    Authorize,
    LabBase,
    add_event,
    evidence_of,
    locked,
    trial_model,
    trial_row,
    with_pending,
)
from controlplane.store.tables import LabEvidenceRow, LabSignoffRow


class LabStages(LabBase):
    """Evidence and stage sign-offs."""

    def evidence(self, trial_id: str) -> list[Evidence]:
        """A trial's evidence, oldest first."""
        with self.db.transaction() as session:
            trial_row(session, trial_id)
            return evidence_of(session, trial_id)

    def add_evidence(
        self,
        trial_id: str,
        *,
        kind: EvidenceKind,
        name: str,
        sha256: str,
        size_bytes: int,
        stage: Stage | None,
        uri: str | None,
        run_id: str | None,
        results: Mapping[str, float],
        actor: str,
        authorize: Authorize | None = None,
    ) -> Evidence:
        """Attach evidence to the trial's current stage (a checksum once per stage)."""
        now = self.clock()
        with self.db.transaction() as session:
            row = locked(session, trial_id, authorize)
            lifecycle.check_action("evidence", TrialState(row.state), trial_id)
            at = stages.evidence_stage(trial_id, Stage(row.stage), stage)
            duplicate = session.scalar(
                select(LabEvidenceRow).where(
                    LabEvidenceRow.trial_id == trial_id,
                    LabEvidenceRow.stage == at.value,
                    LabEvidenceRow.sha256 == sha256,
                )
            )
            if duplicate is not None:
                raise AlreadyExists("evidence", f"{sha256[:12]}... ({duplicate.name})")
            ev = LabEvidenceRow(
                trial_id=trial_id,
                stage=at.value,
                kind=kind.value,
                name=name,
                sha256=sha256,
                size_bytes=size_bytes,
                uri=uri,
                run_id=run_id,
                results=dict(results),
                added_by=actor,
                added_at=now,
            )
            session.add(ev)
            session.flush()
            add_event(
                session,
                row,
                now,
                "evidence",
                actor,
                f"{kind.value} {name!r} ({size_bytes} bytes, sha256 {sha256[:12]}...) "
                f"attached to stage {at.value}",
                evidence=ev.id,
                stage=at.value,
            )
            return Evidence.model_validate(ev, from_attributes=True)

    def signoff(
        self,
        trial_id: str,
        *,
        stage: Stage | None,
        comment: str,
        actor: str,
        role: str,
        authorize: Callable[[Trial, Stage], None],
    ) -> tuple[Trial, Signoff]:
        """Sign the current stage off (``authorize`` judges the caller for that stage);
        the trial moves to the next stage, and a certification enters the catalogue."""
        now = self.clock()
        with self.db.transaction() as session:
            row = trial_row(session, trial_id, lock=True)
            current = Stage(row.stage)
            lifecycle.check_action("signoff", TrialState(row.state), trial_id)
            if current is not Stage.CERTIFIED:
                authorize(trial_model(row), current)
            evidence_ids = list(
                session.scalars(
                    select(LabEvidenceRow.id)
                    .where(
                        LabEvidenceRow.trial_id == trial_id,
                        LabEvidenceRow.stage == current.value,
                    )
                    .order_by(LabEvidenceRow.id)
                )
            )
            nxt = stages.check_signoff(trial_id, current, stage, len(evidence_ids))
            sig = LabSignoffRow(
                trial_id=trial_id,
                stage=current.value,
                signed_by=actor,
                role=role,
                at=now,
                comment=comment,
                evidence=evidence_ids,
            )
            session.add(sig)
            row.stage = nxt.value
            if nxt is Stage.CERTIFIED:
                row.certified_at, row.certified_by = now, actor
            session.flush()
            add_event(
                session,
                row,
                now,
                "signed-off",
                actor,
                f"stage {current.value} signed off by {actor} ({role}) over "
                f"{len(evidence_ids)} piece(s) of evidence; now {nxt.value}"
                + (": the offering is in the catalogue" if nxt is Stage.CERTIFIED else "")
                + (f": {comment}" if comment else ""),
                stage=current.value,
                next=nxt.value,
                signoff=sig.id,
            )
            return with_pending(session, row), Signoff.model_validate(sig, from_attributes=True)
