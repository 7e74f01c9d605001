"""Organisation requests."""

from __future__ import annotations

from controlplane.domain.evacuation import EvacuationOverride
from controlplane.domain.names import Code, Text
from controlplane.domain.org import Organisation
from controlplane.schemas.common import Strict


class OrgCreate(Strict):
    """A new ministry, agency or project under ``parent``."""

    code: Code
    name: Text
    parent: Code


class OrgUpdate(Strict):
    """Changes to an organisation (platform-admins only): a ministry's evacuation policy
    for its instances in every data centre, or ``inherit`` its data centres' policy."""

    evacuation_policy: EvacuationOverride | None = None


class OrgDetail(Organisation):
    """One node with its settings (``GET /v1/orgs/{code}``)."""

    #: A ministry's override of its data centres' evacuation policy, or ``inherit``.
    evacuation_policy: EvacuationOverride = EvacuationOverride.INHERIT
