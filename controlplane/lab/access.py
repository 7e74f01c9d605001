"""Who may do what with a trial, as pure functions over the caller and the trial's nodes.

A trial belongs to two nodes: its vendor's (``gov/openlab/<vendor>``) and its ministry's
(``gov/<ministry>``). A caller **sees** a trial when its scope contains, or lies inside,
one of them: the vendor's people see their own trials only, a ministry's staff the trials
for their ministry, the Lab's staff and root-scoped users all of them. Anything a caller
may not see is reported as not found (no existence leak); what it sees but may not do is
forbidden, naming the role it needs.

* request a trial: the vendor's people (for their vendor), the ministry's admins (for their
  ministry), lab operators;
* approve or reject a trial or an extension: lab operators and platform-admins;
* cancel, ask for an extension, add evidence: the vendor's people, the ministry's admins,
  lab operators (auditors never change anything);
* sign a stage off: the ministry's admin (PoC, Verification), a lab operator
  (Certification), and **never anyone of the trial's vendor**.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.domain.auth import Principal, Role
from controlplane.domain.errors import Forbidden
from controlplane.domain.lab import LAB_ORG, Stage
from controlplane.domain.org import within
from controlplane.lab.stages import SIGNER


@dataclass(frozen=True)
class TrialRef:
    """The two nodes a trial belongs to."""

    vendor_path: str
    ministry_path: str


def lab_path(root: str) -> str:
    """Path of the Lab's organisation."""
    return f"{root}/{LAB_ORG}"


def _related(scope: str, path: str) -> bool:
    return within(path, scope) or within(scope, path)


def vendor_of(who: Principal, root: str) -> str | None:
    """The vendor code a caller works for (its scope lies inside a vendor node), if any."""
    parts = who.org_path.split("/")
    if len(parts) >= 3 and parts[0] == root and parts[1] == LAB_ORG:
        return parts[2]
    return None


def is_vendor_of(who: Principal, ref: TrialRef) -> bool:
    """Whether the caller is one of the trial's vendor's people."""
    return within(who.org_path, ref.vendor_path)


def is_lab_operator(who: Principal, root: str) -> bool:
    """Lab operators are scoped at the Lab's organisation (or the root)."""
    return who.role is Role.LAB_OPERATOR and who.org_path in (root, lab_path(root))


def can_see(who: Principal, ref: TrialRef) -> bool:
    """Whether the trial exists for the caller."""
    if who.is_agent:
        return False
    return _related(who.org_path, ref.vendor_path) or _related(who.org_path, ref.ministry_path)


def _writer(who: Principal) -> None:
    if who.is_agent or who.role is Role.AUDITOR:
        raise Forbidden(f"{who.role.value} {who.name!r} is read-only", role=who.role.value)


def _is_ministry_admin(who: Principal, ref: TrialRef) -> bool:
    return who.role is Role.MINISTRY_ADMIN and within(ref.ministry_path, who.org_path)


def _takes_part(who: Principal, ref: TrialRef, root: str) -> bool:
    """The vendor's people, the ministry's admins, lab operators and platform-admins."""
    return (
        is_vendor_of(who, ref)
        or _is_ministry_admin(who, ref)
        or is_lab_operator(who, root)
        or who.role is Role.PLATFORM_ADMIN
    )


def require_requester(who: Principal, ref: TrialRef, root: str) -> None:
    """Who may ask for a trial of this vendor for this ministry."""
    _writer(who)
    if _takes_part(who, ref, root):
        return
    raise Forbidden(
        f"{who.name!r} may not request trials for vendor {ref.vendor_path.rsplit('/', 1)[-1]!r} "
        f"and ministry {ref.ministry_path.rsplit('/', 1)[-1]!r}: ask the vendor's people, the "
        "ministry's admin or a lab operator",
        role=who.role.value,
    )


def require_lab_decider(who: Principal, ref: TrialRef | None, root: str, what: str) -> None:
    """Approving or rejecting (trials, extensions) is the Lab's: lab operators and
    platform-admins, never the trial's own vendor."""
    _writer(who)
    if ref is not None and is_vendor_of(who, ref):
        raise Forbidden(
            f"{who.name!r} works for the trial's vendor and may not {what} of its own "
            "vendor; a lab-operator decides",
            role=who.role.value,
            required_role=Role.LAB_OPERATOR.value,
        )
    if is_lab_operator(who, root) or who.role is Role.PLATFORM_ADMIN:
        return
    raise Forbidden(
        f"{who.role.value} {who.name!r} may not {what}; a lab-operator decides",
        role=who.role.value,
        required_role=Role.LAB_OPERATOR.value,
    )


def require_contributor(who: Principal, ref: TrialRef, root: str, what: str) -> None:
    """Cancel, ask for an extension, add evidence."""
    _writer(who)
    if _takes_part(who, ref, root):
        return
    raise Forbidden(
        f"{who.role.value} {who.name!r} may not {what}; the vendor's people, the ministry's "
        "admin or a lab operator may",
        role=who.role.value,
    )


def require_signer(who: Principal, ref: TrialRef, stage: Stage, root: str) -> None:
    """Only the stage's role signs it off, and never the trial's own vendor."""
    _writer(who)
    if is_vendor_of(who, ref):
        raise Forbidden(
            f"{who.name!r} works for the trial's vendor; a vendor can never sign off its own trial",
            role=who.role.value,
            stage=stage.value,
        )
    needed = SIGNER[stage]
    ok = (
        _is_ministry_admin(who, ref)
        if needed is Role.MINISTRY_ADMIN
        else is_lab_operator(who, root)
    )
    if not ok:
        whose = (
            f"the admin of ministry {ref.ministry_path.rsplit('/', 1)[-1]!r}"
            if needed is Role.MINISTRY_ADMIN
            else "a lab-operator"
        )
        raise Forbidden(
            f"stage {stage.value} is signed off by {whose}; {who.role.value} {who.name!r} may not",
            role=who.role.value,
            required_role=needed.value,
            stage=stage.value,
        )


def can_see_catalog_entry(who: Principal, vendor_path: str, root: str) -> bool:
    """Every ministry browses the catalogue; a vendor sees only its own offerings there."""
    if who.is_agent:
        return False
    return vendor_of(who, root) is None or within(who.org_path, vendor_path)


def require_promoter(who: Principal, ref: TrialRef, root: str) -> None:
    """Moving a trial's servers into production: the ministry's admins (into their own
    ministry), lab operators and platform-admins; never the trial's vendor."""
    _writer(who)
    if is_vendor_of(who, ref):
        raise Forbidden(
            f"{who.name!r} works for the trial's vendor and may not promote its servers into "
            "a ministry's project; the ministry's admin or a lab operator may",
            role=who.role.value,
            required_role=Role.MINISTRY_ADMIN.value,
        )
    if _is_ministry_admin(who, ref) or is_lab_operator(who, root):
        return
    if who.role is Role.PLATFORM_ADMIN:
        return
    raise Forbidden(
        f"{who.role.value} {who.name!r} may not promote trials; the ministry's admin or a "
        "lab operator may",
        role=who.role.value,
        required_role=Role.MINISTRY_ADMIN.value,
    )
