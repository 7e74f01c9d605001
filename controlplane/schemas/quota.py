"""Quota requests."""

from __future__ import annotations

from pydantic import Field

from controlplane.schemas.common import Strict


class QuotaApply(Strict):
    """A policy file's text, applied (or, with ``dry_run``, only diffed)."""

    policy: str = Field(min_length=1, max_length=1_000_000, description="YAML text")
    filename: str = Field("policy.yaml", max_length=255, pattern=r"^[^\x00-\x1f]*$")
    dry_run: bool = False


class QuotaVerify(Strict):
    """Recompute usage from live instances; ``repair`` fixes any drift found."""

    repair: bool = False
