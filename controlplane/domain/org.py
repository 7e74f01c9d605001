"""The organisation tree: Executive Yuan (root) -> ministry -> agency -> project."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.names import Code, Text


class OrgKind(StrEnum):
    """Level of a node in the organisation tree."""

    ROOT = "root"
    MINISTRY = "ministry"
    AGENCY = "agency"
    PROJECT = "project"


#: The kind a child must have, given its parent's kind.
CHILD_KIND: dict[OrgKind, OrgKind] = {
    OrgKind.ROOT: OrgKind.MINISTRY,
    OrgKind.MINISTRY: OrgKind.AGENCY,
    OrgKind.AGENCY: OrgKind.PROJECT,
}


class Organisation(BaseModel):
    """A node of the tree. ``path`` is the codes from the root, joined by '/'."""

    code: Code
    name: Text
    kind: OrgKind
    parent: Code | None
    path: str

    @property
    def ministry(self) -> str | None:
        """Code of the ministry this node belongs to (None for the root)."""
        parts = self.path.split("/")
        return parts[1] if len(parts) > 1 else None


def within(path: str, scope: str) -> bool:
    """True when ``path`` is ``scope`` itself or lies in its subtree."""
    return path == scope or path.startswith(scope + "/")


def can_see_org(path: str, scope: str) -> bool:
    """A caller sees its subtree and the ancestors on the way up to the root."""
    return within(path, scope) or within(scope, path)
