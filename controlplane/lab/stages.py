"""PoC -> Verification -> Certification: what moving on requires.

A stage is complete when at least one piece of evidence (a scenario result or a document
by checksum) is attached to it and the right role signs it off: the trial's **ministry
admin** for PoC and Verification, a **lab operator** for Certification. Signing off
Certification makes the trial ``certified``: its offering enters the catalogue.
Evidence always attaches to the trial's current stage.
"""

from __future__ import annotations

from controlplane.domain.auth import Role
from controlplane.domain.errors import InvalidRequest, InvalidState
from controlplane.domain.lab import Stage

#: The stage after each stage.
NEXT: dict[Stage, Stage] = {
    Stage.POC: Stage.VERIFICATION,
    Stage.VERIFICATION: Stage.CERTIFICATION,
    Stage.CERTIFICATION: Stage.CERTIFIED,
}

#: Who signs each stage off.
SIGNER: dict[Stage, Role] = {
    Stage.POC: Role.MINISTRY_ADMIN,
    Stage.VERIFICATION: Role.MINISTRY_ADMIN,
    Stage.CERTIFICATION: Role.LAB_OPERATOR,
}


def _not_certified(trial_id: str, current: Stage, what: str) -> None:
    if current is Stage.CERTIFIED:
        raise InvalidState(
            f"trial {trial_id} is certified already; {what} is no longer possible",
            code="lab.already_certified",
            stage=current.value,
        )


def evidence_stage(trial_id: str, current: Stage, asked: Stage | None) -> Stage:
    """The stage new evidence attaches to: the current one (``asked`` must match it)."""
    _not_certified(trial_id, current, "adding evidence")
    if asked is not None and asked is not current:
        raise InvalidRequest(
            f"stage: trial {trial_id} is at stage {current.value}; evidence attaches to the "
            f"current stage, not {asked.value}",
            code="lab.stage_mismatch",
            field="stage",
            value=asked.value,
            limit=current.value,
        )
    return current


def check_signoff(trial_id: str, current: Stage, asked: Stage | None, evidence: int) -> Stage:
    """Validate signing ``current`` off (``asked``, if given, guards against signing the
    wrong stage after a concurrent sign-off); return the stage the trial moves to."""
    _not_certified(trial_id, current, "signing off")
    if asked is not None and asked is not current:
        raise InvalidState(
            f"trial {trial_id} is at stage {current.value}, not {asked.value}; "
            "see it with `govcloud lab show`",
            code="lab.stage_mismatch",
            field="stage",
            value=asked.value,
            limit=current.value,
        )
    if evidence == 0:
        raise InvalidState(
            f"stage {current.value} of trial {trial_id} has no evidence; attach scenario "
            f"results or documents first (`govcloud lab evidence add {trial_id} ...`)",
            code="lab.evidence_missing",
            stage=current.value,
        )
    return NEXT[current]
