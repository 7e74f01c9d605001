"""``/v1/audit``: the audit trail of the caller's subtree (read-only for everyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api.context import StoreDep, UserDep
from controlplane.domain.audit import AuditEvent
from controlplane.domain.auth import Role
from controlplane.domain.errors import Forbidden

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", name="audit.list", response_model=list[AuditEvent])
def list_events(
    store: StoreDep,
    who: UserDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
    actor: str | None = None,
    action: str | None = None,
    request_id: str | None = None,
) -> list[AuditEvent]:
    """Newest first; page with ``before=<smallest id seen>``."""
    if who.role is Role.MEMBER:
        raise Forbidden("members may not read the audit trail; ask an auditor or admin")
    return store.audit.list(
        who.org_path, limit=limit, before=before, actor=actor, action=action, request_id=request_id
    )
