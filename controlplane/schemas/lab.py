"""Cloud Open Lab requests (``/v1/lab/...``): vendors, trials, decisions, extensions,
evidence and sign-offs. Unknown fields are refused; every limit is named in the error."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, FiniteFloat, StringConstraints

from controlplane.domain.lab import (
    MAX_EVIDENCE_BYTES,
    MAX_RESULTS,
    EvidenceKind,
    EvidenceUri,
    Extension,
    MetricName,
    Sha256,
    Signoff,
    Stage,
    Trial,
    TrialName,
    VendorCode,
)
from controlplane.domain.names import Code, Name, Text
from controlplane.lab.templates import Network, ServerGroup
from controlplane.schemas.common import Strict

#: A duration as people write it: ``14d``, ``36h``, ``2w``, ``1w3d``.
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^\s*(\d{1,5}[hdwHDW])+\s*$", max_length=32),
    Field(description="e.g. 14d, 36h, 2w, 1w3d", examples=["14d"]),
]


class VendorCreate(Strict):
    """A vendor of the Lab: its organisation node is created under ``openlab``."""

    code: VendorCode
    name: Text = Field(min_length=1)


class TrialCreate(Strict):
    """Ask for a trial environment of ``vendor`` for ``ministry``."""

    name: TrialName
    vendor: VendorCode
    ministry: Code
    template: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    ttl: Duration | None = Field(None, description="default: the template's default TTL")
    offering: Text | None = Field(None, description="what is proven; default: the name")
    description: Text = ""


class Decision(Strict):
    """Approve or reject (a trial request or a pending extension)."""

    comment: Text = ""


class Cancel(Strict):
    """Withdraw a request, or end a running trial early."""

    reason: Text = ""


class ExtensionCreate(Strict):
    """Ask for more time; a lab operator approves it."""

    by: Duration
    reason: Text = ""


class EvidenceCreate(Strict):
    """A scenario result or document, referenced by its SHA-256, attached to the current
    stage (``stage``, if given, must be it)."""

    kind: EvidenceKind = EvidenceKind.DOCUMENT
    name: Text = Field(min_length=1)
    sha256: Sha256
    size_bytes: int = Field(ge=0, le=MAX_EVIDENCE_BYTES)
    stage: Stage | None = None
    uri: EvidenceUri | None = None
    run_id: Name | None = None
    results: dict[MetricName, FiniteFloat] = Field(default_factory=dict, max_length=MAX_RESULTS)


class SignoffCreate(Strict):
    """Sign the trial's current stage off; ``stage`` guards against signing the wrong one."""

    stage: Stage | None = None
    comment: Text = ""


class SignoffResult(BaseModel):
    """The trial after a sign-off, and the sign-off."""

    trial: Trial
    signoff: Signoff


class ExtensionDecided(BaseModel):
    """The trial after an extension was decided, and the extension."""

    trial: Trial
    extension: Extension


class TemplateView(BaseModel):
    """A trial template as the API shows it."""

    name: str
    description: str
    default_ttl: str
    max_ttl: str
    quota_class: str
    limits: dict[str, int]
    servers: list[ServerGroup]
    networks: list[Network]
    server_count: int


class RunCancel(Strict):
    """Cancel a scenario run: its VMs and server groups are removed."""

    reason: Text = ""


class Promote(Strict):
    """Move the trial's servers into a production project (quota-checked)."""

    to: Code = Field(description="the production project's code")


class Promoted(BaseModel):
    """What ``promote`` moved."""

    trial_id: str
    project: str
    instances: list[str]
