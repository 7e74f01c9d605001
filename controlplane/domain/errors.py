"""Domain errors with stable codes.

Every error carries a stable dotted ``code`` (``instance.not_found``), a message a person can
act on, and structured ``details``. The API layer maps each class to an HTTP status; nothing
here knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class GovcloudError(Exception):
    """Base class: a failure the caller can understand and act on."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details


#: The CLI command that lists a kind, where it is not ``govcloud <kind> list``
#: (``govcloud server`` manages instances, for example).
CLI_LIST: dict[str, str] = {
    "instance": "server list",
    "server_group": "server group list",
    "lab_template": "lab templates",
    "drain": "host drains",
    "extension": "lab show TRIAL",
    "migration": "server show SERVER",
    "consolidation": "dc consolidations",
}


class NotFound(GovcloudError):
    """The named resource does not exist, or the caller may not see it."""

    def __init__(self, kind: str, ident: str) -> None:
        listing = CLI_LIST.get(kind, f"{kind} list")
        super().__init__(
            f"{kind} {ident!r} not found; list them with `govcloud {listing}`",
            code=f"{kind}.not_found",
            kind=kind,
            id=ident,
        )


class AlreadyExists(GovcloudError):
    """A resource with the same unique key exists already."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(
            f"{kind} {ident!r} already exists; choose another name",
            code=f"{kind}.exists",
            kind=kind,
            id=ident,
        )


class InvalidState(GovcloudError):
    """The action is not allowed in the resource's current state."""


class InvalidRequest(GovcloudError):
    """The request is well-formed but contradicts the model (e.g. wrong org level)."""

    code = "request.invalid"


class Unauthenticated(GovcloudError):
    """No valid credential was presented."""

    code = "auth.unauthenticated"


class Forbidden(GovcloudError):
    """The caller is authenticated but its role or scope does not allow this."""

    code = "auth.forbidden"


class Conflict(GovcloudError):
    """A concurrent change won; the caller may retry."""

    code = "conflict"
