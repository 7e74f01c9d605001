"""Organisation requests."""

from __future__ import annotations

from controlplane.domain.names import Code, Text
from controlplane.schemas.common import Strict


class OrgCreate(Strict):
    """A new ministry, agency or project under ``parent``."""

    code: Code
    name: Text
    parent: Code
