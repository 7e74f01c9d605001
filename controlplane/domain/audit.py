"""Audit events: the append-only record of every mutating call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEvent(BaseModel):
    """Who did what to which target, when, with what outcome, under which request id."""

    id: int
    time: datetime
    request_id: str
    actor: str
    actor_role: str
    organisation: str
    action: str
    target_type: str
    target_id: str
    outcome: str  # success | failure
    status_code: int
    details: dict[str, Any] = {}
