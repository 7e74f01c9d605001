"""Data centres: the consolidated sites that hosts live in, and placement policies."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.evacuation import EvacuationPolicy
from controlplane.domain.names import Code, Text


class DataCentreState(StrEnum):
    """Whether a data centre takes new placements."""

    ACTIVE = "active"
    DRAINING = "draining"
    RETIRED = "retired"


class PlacementPolicy(StrEnum):
    """How the scheduler ranks the hosts that can take a request.

    ``pack`` fills the fewest hosts (already used hosts first, tightest fit; then the empty
    host that holds the most copies), so idle hosts can be powered down: the consolidation
    goal. ``spread`` balances load (the host with the largest free fraction left after the
    claim wins), for resilience.
    """

    PACK = "pack"
    SPREAD = "spread"


#: The policy when neither the request nor a data centre names one.
DEFAULT_POLICY = PlacementPolicy.SPREAD


class DataCentre(BaseModel):
    """One consolidated data centre, with the placement policy its requests default to."""

    code: Code
    name: Text
    location: Text = ""
    state: DataCentreState = DataCentreState.ACTIVE
    placement_policy: PlacementPolicy = DEFAULT_POLICY
    #: What happens to the instances of a host that goes DOWN (see domain/evacuation.py).
    evacuation_policy: EvacuationPolicy = EvacuationPolicy.NONE
