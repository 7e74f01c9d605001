"""Quota views and errors as the API shows them.

The rules themselves live in the pure ``quotas`` package; this module adapts them to the
organisation tree and the instance model. Decision: every instance that is not DELETED
counts, PENDING and STOPPED ones included. Quota is consumed when a request is accepted
(so an accepted PENDING request can always be placed within quota later) and a stopped VM
keeps its host claim, so it keeps its quota too (as in Nova).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from controlplane.domain.errors import GovcloudError, InvalidRequest
from controlplane.domain.resources import Resources
from quotas import Limits, PolicyError, QuotaClass, Usage, desired_limits, parse_policy

DimensionLimits = dict[str, int | None]


def instance_usage(resources: Resources) -> Usage:
    """What one instance of ``resources`` counts against every level of its path."""
    return Usage.of(instances=1, **resources.model_dump())


class QuotaExceeded(GovcloudError):
    """A request would take some level of the organisation tree over its limit."""

    code = "quota.exceeded"

    def __init__(self, message: str, violations: list[dict[str, Any]]) -> None:
        super().__init__(
            f"quota exceeded: {message}. Ask your ministry or platform admin to raise the "
            "limit, or delete unused servers",
            violations=violations,
        )


class QuotaNode(BaseModel):
    """One node's limits, its subtree's usage, the headroom and the percentages used."""

    org: str
    kind: str
    path: str
    limits: DimensionLimits = Field(description="absent or null: unlimited")
    soft_threshold: float
    usage: dict[str, int]
    headroom: DimensionLimits = Field(
        description="what one more request here may take: the least room left at this node "
        "and at each of its ancestors (null: unlimited)"
    )
    percent_used: dict[str, float]
    over_limit: list[str] = Field(description="dimensions above a lowered limit")
    over_soft_threshold: list[str]


class QuotaReport(BaseModel):
    """A node and its direct children."""

    node: QuotaNode
    children: list[QuotaNode]


class QuotaSet(BaseModel):
    """New limits for one node: dimension -> cap (null: unlimited), unset ones unchanged.

    As strict as a policy file: unknown fields are refused (a typo must not read as "no
    change"), and a cap is a JSON integer (not ``true``, ``"5"`` or ``4.0``).
    """

    model_config = ConfigDict(extra="forbid")

    limits: dict[str, StrictInt | None] = {}
    soft_threshold: float | None = Field(None, gt=0, le=1)


class QuotaChange(BaseModel):
    """One field a set or an apply changes (or would change, on a dry run)."""

    org: str
    field: str
    old: int | float | None
    new: int | float | None
    used: int | None = None
    below_usage: bool = False
    description: str


class QuotaDrift(BaseModel):
    """A node whose stored usage differs from what its live instances add up to."""

    org: str
    stored: dict[str, int]
    actual: dict[str, int]
    repaired: bool


class QuotaEvent(BaseModel):
    """A soft-threshold crossing."""

    id: int
    time: datetime
    org: str
    kind: str
    dimension: str
    used: int
    limit: int
    message: str


def resolve_policy(
    text: str, filename: str, library: Mapping[str, QuotaClass], known_orgs: Collection[str]
) -> dict[str, Limits]:
    """Parse a policy file into limits per organisation; errors name file, line and field."""
    try:
        return desired_limits(parse_policy(text, filename), library, known_orgs)
    except PolicyError as exc:
        raise InvalidRequest(
            f"policy file {filename} is invalid:\n{exc}",
            code="quota.policy_invalid",
            problems=[
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in exc.problems
            ],
        ) from exc
