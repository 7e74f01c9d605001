"""Data centres: the consolidated sites that hosts live in."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from controlplane.domain.names import Code, Text


class DataCentreState(StrEnum):
    """Whether a data centre takes new placements."""

    ACTIVE = "active"
    DRAINING = "draining"
    RETIRED = "retired"


class DataCentre(BaseModel):
    """One consolidated data centre."""

    code: Code
    name: Text
    location: Text = ""
    state: DataCentreState = DataCentreState.ACTIVE
