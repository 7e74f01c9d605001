"""Requests for catalogue resources (data centres, flavors, images) and their updates."""

from __future__ import annotations

from controlplane.domain.datacentre import DataCentre, DataCentreState, PlacementPolicy
from controlplane.domain.evacuation import EvacuationPolicy
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.domain.names import Text
from controlplane.schemas.common import Strict


class DataCentreCreate(DataCentre, Strict):
    """A new data centre."""


class DataCentreUpdate(Strict):
    """Changes to a data centre (e.g. ``state: draining`` to stop new placements)."""

    name: Text | None = None
    location: Text | None = None
    state: DataCentreState | None = None
    placement_policy: PlacementPolicy | None = None
    evacuation_policy: EvacuationPolicy | None = None


class FlavorCreate(Flavor, Strict):
    """A new flavor."""


class ImageCreate(Image, Strict):
    """A new image."""
