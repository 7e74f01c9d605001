"""Envelopes shared by every resource: errors and pages."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message, details and the request id."""

    code: str
    message: str
    details: dict[str, Any] = {}
    request_id: str


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_marker`` back as ``marker`` for the next page."""

    items: list[T]
    next_marker: str | None = None
