"""Cloud Open Lab: vendors, trials, stages, evidence, sign-offs and the catalogue (models).

A **vendor** (``cht``) is an agency-level node ``gov/openlab/<vendor>`` under the Lab's
organisation; its users are the vendor's people. A **trial** is a vendor's request to prove
an offering for one ministry (``--for moe``); once approved it owns an isolated project
``gov/openlab/<vendor>/<trial id>`` with the ``openlab-trial`` quota class, and it lives
``requested -> approved -> active -> expiring -> expired -> cleaned`` (or ``rejected`` /
``cancelled``). Independently it climbs the **stages** ``poc -> verification ->
certification -> certified``; a certified trial is an entry of the **catalogue**.

The rules (who may do what, when a trial moves) are pure functions in ``controlplane.lab``;
this module only holds the values the layers exchange.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from controlplane.domain.errors import GovcloudError, NotFound
from controlplane.domain.names import Text

#: Code of the Lab's organisation (a ministry-level node under the root), and its name.
LAB_ORG = "openlab"
LAB_ORG_NAME = "Cloud Open Lab"

#: Vendor codes are short: a trial id is ``<vendor>-<name>`` and must fit an org code (32).
VendorCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9]{1,11}$"),
    Field(description="2-12 lower-case letters and digits, starting with a letter"),
]
#: A trial's name, unique per vendor; ``<vendor>-<name>`` is the trial id (at most 32 chars).
TrialName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$|^[a-z]$"),
    Field(description="lower-case letters, digits and '-', starting with a letter, 1-30 chars"),
]
#: A SHA-256 digest in lower-case hex.
Sha256 = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(description="SHA-256 of the content, 64 lower-case hex digits"),
]
#: Where evidence can be fetched (informative): no control characters or spaces.
EvidenceUri = Annotated[str, StringConstraints(pattern=r"^[^\s\x00-\x1f\x7f]{1,1024}$")]
#: A measured-result key, e.g. ``p95_latency_ms``, ``connections``.
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]

#: Largest document an evidence record may describe (1 TiB).
MAX_EVIDENCE_BYTES = 1 << 40
#: Measured results per evidence record.
MAX_RESULTS = 64


class TrialState(StrEnum):
    """Where a trial is in its life (see ``controlplane.lab.lifecycle``)."""

    REQUESTED = "requested"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    CLEANED = "cleaned"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Stage(StrEnum):
    """The Lab's path for an offering: PoC (實證) -> Verification (驗證) -> Certification (認證)."""

    POC = "poc"
    VERIFICATION = "verification"
    CERTIFICATION = "certification"
    CERTIFIED = "certified"


class EvidenceKind(StrEnum):
    """What a piece of evidence is."""

    SCENARIO_RESULT = "scenario-result"
    DOCUMENT = "document"


class ExtensionState(StrEnum):
    """A request for more time, decided by a lab operator."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Vendor(BaseModel):
    """A company trying its offerings in the Lab; its users belong to ``org_path``."""

    code: VendorCode
    name: Text
    org_path: str
    users: list[str] = Field(default_factory=list, description="user names in its subtree")
    created_at: datetime


class TrialUsage(BaseModel):
    """What a trial's project used from ``start`` to ``end`` (kept after cleanup)."""

    start: datetime
    end: datetime
    instances: int
    instance_hours: float
    vcpu_hours: float
    ram_gib_hours: float
    disk_gib_hours: float


class Trial(BaseModel):
    """A vendor's trial environment for one ministry."""

    id: str = Field(description="<vendor>-<name>; also the code of its project")
    name: str
    vendor: str
    ministry: str
    offering: str = Field(description="what is being proven, as the catalogue will show it")
    description: str = ""
    template: str
    ttl_hours: int = Field(description="the life asked for (hours), counted from activation")
    state: TrialState
    stage: Stage
    project: str | None = Field(None, description="its project's code, once approved")
    project_path: str | None = None
    requested_by: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    activated_at: datetime | None = None
    ends_at: datetime | None = None
    expired_at: datetime | None = None
    cleaned_at: datetime | None = None
    pending_extension: int | None = Field(None, description="id of an undecided extension")
    final_usage: TrialUsage | None = None


class TrialEvent(BaseModel):
    """One entry of a trial's history: transitions, warnings, evidence, sign-offs."""

    id: int
    trial_id: str
    at: datetime
    kind: str
    actor: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)


class Evidence(BaseModel):
    """A scenario result or a document, referenced by checksum, attached to a stage."""

    id: int
    trial_id: str
    stage: Stage
    kind: EvidenceKind
    name: str
    sha256: Sha256
    size_bytes: int
    uri: str | None = None
    run_id: str | None = Field(None, description="the scenario run it came from (if any)")
    results: dict[str, float] = Field(default_factory=dict, description="measured figures")
    added_by: str
    added_at: datetime


class Signoff(BaseModel):
    """The decision that a stage is complete, by the role that stage requires."""

    id: int
    trial_id: str
    stage: Stage
    signed_by: str
    role: str
    at: datetime
    comment: str = ""
    evidence: list[int] = Field(default_factory=list, description="evidence ids it covered")


class Extension(BaseModel):
    """A request to extend a trial's life by ``hours``."""

    id: int
    trial_id: str
    hours: int
    reason: str = ""
    state: ExtensionState
    requested_by: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None


class CatalogEntry(BaseModel):
    """A certified offering: certify once, use everywhere."""

    trial_id: str
    offering: str
    description: str
    vendor: str
    vendor_name: str
    certified_for: str = Field(description="the ministry whose trial certified it")
    template: str
    certified_at: datetime
    certified_by: str
    signoffs: list[Signoff]
    evidence: list[Evidence]
    results: dict[str, float] = Field(
        description="measured figures of all evidence (later stages override earlier ones)"
    )
    usage: TrialUsage | None = None


class TrialInstance(BaseModel):
    """A server of the trial's project, as observers see it."""

    id: str
    name: str
    flavor: str
    state: str
    desired_power: str


class TrialDetail(BaseModel):
    """Everything ``lab show`` prints about one trial."""

    trial: Trial
    members: list[str] = Field(description="vendor users: work in the trial's project")
    observers: list[str] = Field(description="the ministry's staff: read-only")
    events: list[TrialEvent]
    evidence: list[Evidence]
    signoffs: list[Signoff]
    extensions: list[Extension]
    instances: list[TrialInstance]
    usage: TrialUsage | None = Field(None, description="so far, or the final record")


class TrialNotFound(NotFound):
    """A trial that does not exist or that the caller may not see (the same answer)."""

    def __init__(self, ident: str) -> None:
        GovcloudError.__init__(
            self,
            f"trial {ident!r} not found; list yours with `govcloud lab list`",
            code="trial.not_found",
            kind="trial",
            id=ident,
        )


class VendorNotFound(NotFound):
    """A vendor that does not exist or that the caller may not see."""

    def __init__(self, ident: str) -> None:
        GovcloudError.__init__(
            self,
            f"vendor {ident!r} not found; list them with `govcloud lab vendor list`",
            code="vendor.not_found",
            kind="vendor",
            id=ident,
        )
