"""Target data centres: where workloads go, and the space, power and affinity that bound it.

A data centre offers ``space_u`` rack units for hypervisors and an IT power budget
``power_kw`` (either may be left out: unbounded). ``ministries`` lists the ministries it is
led by or serves first (G-Cloud's data centres are ministry-led); ``region`` is preferred
next. A host model of ``rack_units`` U fits ``space_u // rack_units`` times.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.names import Code, Text, require_unique
from controlplane.planner.hostmodel import HostModel
from controlplane.planner.yamlfile import load_model


class TargetDataCentre(BaseModel):
    """One consolidated data centre as a planning target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    name: Text = ""
    region: Code = "north"
    ministries: list[Code] = []
    space_u: int | None = Field(None, ge=0, le=10_000_000, description="rack units for hosts")
    power_kw: float | None = Field(None, ge=0, le=1e7, description="IT power budget, kW")

    def max_hosts(self, model: HostModel) -> int | None:
        """How many hosts of ``model`` fit in the space (None: unbounded)."""
        return None if self.space_u is None else self.space_u // model.rack_units


class TargetFile(BaseModel):
    """A targets file: the data centres to plan into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Text = ""
    datacentres: list[TargetDataCentre] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        require_unique((dc.code for dc in self.datacentres), "data centre codes")
        return self


def load_targets(text: str, filename: str) -> TargetFile:
    """Parse a targets YAML file's text (errors name file, line, field and value)."""
    return load_model(text, filename, TargetFile, expected="a mapping with 'datacentres'")
