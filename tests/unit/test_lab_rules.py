"""Cloud Open Lab rules: who may see and do what with a trial, stage sign-off
requirements, durations and template files."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.domain.auth import Principal, Role
from controlplane.domain.errors import Forbidden, InvalidRequest, InvalidState, NotFound
from controlplane.domain.lab import Stage
from controlplane.lab import access, stages
from controlplane.lab.access import TrialRef
from controlplane.lab.duration import parse_hours, show_hours
from controlplane.lab.templates import get_template, load_templates, parse_template
from quotas import load_classes

ROOT = "gov"
REF = TrialRef(vendor_path="gov/openlab/cht", ministry_path="gov/moe")


def who(role: Role, scope: str) -> Principal:
    return Principal(name=f"{role.value}@{scope}", role=role, org_path=scope)


CHT = who(Role.MEMBER, "gov/openlab/cht")
CHT_OPERATOR = who(Role.LAB_OPERATOR, "gov/openlab/cht")
FET = who(Role.MEMBER, "gov/openlab/fet")
OPERATOR = who(Role.LAB_OPERATOR, "gov/openlab")
MOE_ADMIN = who(Role.MINISTRY_ADMIN, "gov/moe")
MOE_AGENCY_ADMIN = who(Role.MINISTRY_ADMIN, "gov/moe/naer")
MOE_MEMBER = who(Role.MEMBER, "gov/moe/naer")
MOTC_ADMIN = who(Role.MINISTRY_ADMIN, "gov/motc")
AUDITOR = who(Role.AUDITOR, "gov")
ADMIN = who(Role.PLATFORM_ADMIN, "gov")


@pytest.mark.parametrize(
    ("principal", "sees"),
    [
        (CHT, True),
        (FET, False),
        (OPERATOR, True),
        (MOE_ADMIN, True),
        (MOE_MEMBER, True),
        (MOTC_ADMIN, False),
        (AUDITOR, True),
        (ADMIN, True),
        (Principal(name="agent:h", role=Role.AGENT, org_path="gov", host_id="h"), False),
    ],
)
def test_visibility(principal: Principal, sees: bool) -> None:
    assert access.can_see(principal, REF) is sees


def test_only_lab_operators_and_platform_admins_decide() -> None:
    access.require_lab_decider(OPERATOR, REF, ROOT, "approve")
    access.require_lab_decider(ADMIN, REF, ROOT, "approve")
    for principal in (CHT, MOE_ADMIN, AUDITOR, CHT_OPERATOR):
        with pytest.raises(Forbidden):
            access.require_lab_decider(principal, REF, ROOT, "approve")


def test_signers_per_stage_and_never_the_vendor() -> None:
    access.require_signer(MOE_ADMIN, REF, Stage.POC, ROOT)
    access.require_signer(MOE_ADMIN, REF, Stage.VERIFICATION, ROOT)
    access.require_signer(OPERATOR, REF, Stage.CERTIFICATION, ROOT)
    refused = [
        (MOE_ADMIN, Stage.CERTIFICATION),
        (OPERATOR, Stage.POC),
        (MOE_AGENCY_ADMIN, Stage.POC),
        (MOE_MEMBER, Stage.POC),
        (MOTC_ADMIN, Stage.POC),
        (ADMIN, Stage.CERTIFICATION),
        (AUDITOR, Stage.POC),
    ]
    for principal, stage in refused:
        with pytest.raises(Forbidden):
            access.require_signer(principal, REF, stage, ROOT)
    for stage in (Stage.POC, Stage.VERIFICATION, Stage.CERTIFICATION):
        for vendor in (CHT, CHT_OPERATOR):
            with pytest.raises(Forbidden, match="never sign off its own"):
                access.require_signer(vendor, REF, stage, ROOT)


def test_requesters_and_contributors() -> None:
    for principal in (CHT, MOE_ADMIN, OPERATOR, ADMIN):
        access.require_requester(principal, REF, ROOT)
        access.require_contributor(principal, REF, ROOT, "add evidence")
    for principal in (FET, MOE_MEMBER, MOTC_ADMIN, AUDITOR):
        with pytest.raises(Forbidden):
            access.require_requester(principal, REF, ROOT)
        with pytest.raises(Forbidden):
            access.require_contributor(principal, REF, ROOT, "add evidence")


def test_catalogue_is_for_every_ministry_and_each_vendor_sees_its_own() -> None:
    assert access.can_see_catalog_entry(MOTC_ADMIN, REF.vendor_path, ROOT)
    assert access.can_see_catalog_entry(CHT, REF.vendor_path, ROOT)
    assert not access.can_see_catalog_entry(FET, REF.vendor_path, ROOT)
    assert access.vendor_of(FET, ROOT) == "fet"
    assert access.vendor_of(OPERATOR, ROOT) is None


def test_signoff_needs_evidence_and_the_current_stage() -> None:
    assert stages.check_signoff("t", Stage.POC, None, 1) is Stage.VERIFICATION
    assert stages.check_signoff("t", Stage.CERTIFICATION, Stage.CERTIFICATION, 2) is (
        Stage.CERTIFIED
    )
    with pytest.raises(InvalidState) as missing:
        stages.check_signoff("t", Stage.POC, None, 0)
    assert missing.value.code == "lab.evidence_missing"
    with pytest.raises(InvalidState) as wrong:
        stages.check_signoff("t", Stage.VERIFICATION, Stage.POC, 3)
    assert wrong.value.code == "lab.stage_mismatch"
    with pytest.raises(InvalidState, match="certified already"):
        stages.check_signoff("t", Stage.CERTIFIED, None, 3)
    assert stages.evidence_stage("t", Stage.POC, None) is Stage.POC
    with pytest.raises(InvalidRequest) as mismatch:
        stages.evidence_stage("t", Stage.POC, Stage.VERIFICATION)
    assert mismatch.value.details == {"field": "stage", "value": "verification", "limit": "poc"}


@pytest.mark.parametrize(
    ("text", "hours"), [("14d", 336), ("36h", 36), ("2w", 336), ("1w3d", 240), (" 1D12H ", 36)]
)
def test_durations(text: str, hours: int) -> None:
    assert parse_hours(text, field="ttl") == hours


def test_duration_errors_name_field_value_and_limit() -> None:
    with pytest.raises(InvalidRequest) as bad:
        parse_hours("two weeks", field="ttl")
    assert bad.value.details == {"field": "ttl", "value": "two weeks"}
    with pytest.raises(InvalidRequest) as long:
        parse_hours("45d", field="ttl", maximum=30 * 24)
    assert long.value.details == {"field": "ttl", "value": "45d", "limit": "30d"}
    with pytest.raises(InvalidRequest):
        parse_hours("0h", field="by")
    assert show_hours(36) == "1d12h"
    assert show_hours(5) == "5h"


def test_packaged_templates_are_valid() -> None:
    templates = load_templates(load_classes())
    assert {"poc-small", "poc-food-cloud", "stress-test"} <= set(templates)
    food = templates["poc-food-cloud"]
    assert food.server_count == 33  # the food-cloud PoC's 33 VMs
    assert food.limits["instances"] == 33
    small = templates["poc-small"]
    assert (small.default_ttl_hours, small.max_ttl_hours) == (14 * 24, 30 * 24)
    assert small.limits["vcpus"] == 24
    with pytest.raises(NotFound):
        get_template(templates, "nope")


GOOD = """
description: test
default_ttl: 7d
max_ttl: 14d
servers:
  - {role: web, flavor: m1.small, count: 2}
"""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("7d\nmax_ttl: 14d", "21d\nmax_ttl: 14d"), "default_ttl"),
        (("count: 2", "count: 40"), "servers"),
        (("count: 2", "count: 0"), "servers.0.count"),
        (("description: test", "description: test\nquota_class: nope"), "quota_class"),
        (("description: test", "description: test\nquota: {vcpus: 999}"), "quota.vcpus"),
        (("description: test", "description: test\ncolour: red"), "colour"),
    ],
)
def test_template_errors_name_file_and_field(change: tuple[str, str], field: str) -> None:
    classes = load_classes()
    parse_template(GOOD, "t.yaml", "t", classes)
    with pytest.raises(InvalidRequest) as bad:
        parse_template(GOOD.replace(*change), "t.yaml", "t", classes)
    assert bad.value.details == {"file": "t.yaml", "field": field}
    assert bad.value.message.startswith(f"template t.yaml: {field}:")


def test_template_dir_is_package_data() -> None:
    from controlplane.lab.templates import TEMPLATE_DIR

    assert Path(__file__).parents[2] / "controlplane" / "lab" / "templates" == TEMPLATE_DIR
