"""Candidate host models: what one server of a model offers, draws and costs.

A model's *usable* capacity is computed exactly as for an enrolled govcloud host
(:func:`controlplane.domain.host.usable`: ``floor((capacity - reserved) * ratio)``), so a
plan's host counts hold under the scheduler's own rules. vCPUs are hardware threads
(``cores x threads_per_core``); power is interpolated linearly between idle and peak watts
by CPU utilisation, the usual first-order server power model.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.host import DEFAULT_RESERVED, AllocationRatios, usable
from controlplane.domain.names import Name, Text, require_unique
from controlplane.domain.resources import Resources
from controlplane.planner.yamlfile import load_model


class HostModel(BaseModel):
    """One server model offered by a vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: Text = ""
    cores: int = Field(gt=0, le=4096, description="physical cores in the server (all sockets)")
    threads_per_core: int = Field(2, ge=1, le=8)
    ram_gib: int = Field(gt=0, le=1_000_000)
    disk_gib: int = Field(0, ge=0, le=1_000_000_000)
    idle_watts: float = Field(ge=0, le=100_000)
    peak_watts: float = Field(gt=0, le=100_000)
    price: float = Field(ge=0, le=1e12, description="purchase price per server, in the currency")
    rack_units: int = Field(1, ge=1, le=48)
    ratios: AllocationRatios = AllocationRatios()
    reserved: Resources = DEFAULT_RESERVED

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.peak_watts < self.idle_watts:
            raise ValueError(
                f"peak_watts ({self.peak_watts}) is below idle_watts ({self.idle_watts})"
            )
        if self.reserved.ram_mib >= self.ram_gib * 1024 or self.reserved.vcpus >= self.vcpus:
            raise ValueError("reserved leaves no vCPU or RAM for guests")
        return self

    @property
    def vcpus(self) -> int:
        """Hardware threads: ``cores x threads_per_core``."""
        return self.cores * self.threads_per_core

    @property
    def capacity(self) -> Resources:
        """Raw capacity, as the host's agent would report it."""
        return Resources(vcpus=self.vcpus, ram_mib=self.ram_gib * 1024, disk_gib=self.disk_gib)

    @property
    def usable(self) -> Resources:
        """What the scheduler may allocate on one host (ratios applied, reserve removed)."""
        return usable(self.capacity, self.reserved, self.ratios)

    @property
    def physical(self) -> Resources:
        """Real resources left for guests after the reserve (no overcommit)."""
        return self.capacity - self.reserved

    def watts(self, cpu_utilisation: float) -> float:
        """Draw of one host at ``cpu_utilisation`` (0..1 of its threads; clamped)."""
        u = min(1.0, max(0.0, cpu_utilisation))
        return self.idle_watts + (self.peak_watts - self.idle_watts) * u


class HostModelCatalog(BaseModel):
    """A host-models file: the candidates and the currency their prices are in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("TWD", pattern=r"^[A-Z]{3}$")
    models: list[HostModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        require_unique((m.name for m in self.models), "model names")
        return self

    def get(self, name: str) -> HostModel:
        """The model called ``name``; ``KeyError`` names the known ones."""
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models)
        raise KeyError(f"no host model {name!r}; the file defines: {known}")


def load_host_models(text: str, filename: str) -> HostModelCatalog:
    """Parse a host-models YAML file's text (errors name file, line, field and value)."""
    return load_model(
        text, filename, HostModelCatalog, expected="a mapping with 'currency' and 'models'"
    )


#: The models of docs/examples/host-models.yaml, used when no file is given (a test keeps
#: the two equal).
BUILTIN = HostModelCatalog(
    currency="TWD",
    models=[
        HostModel(
            name="r1-64c-512g",
            description="1U, 2 x 32 cores, 512 GiB, 8 x 960 GB NVMe",
            cores=64,
            ram_gib=512,
            disk_gib=7680,
            idle_watts=150,
            peak_watts=550,
            price=520_000,
            rack_units=1,
        ),
        HostModel(
            name="r2-96c-1t",
            description="2U, 2 x 48 cores, 1 TiB, 16 x 1.92 TB NVMe",
            cores=96,
            ram_gib=1024,
            disk_gib=30720,
            idle_watts=220,
            peak_watts=800,
            price=1_050_000,
            rack_units=2,
        ),
        HostModel(
            name="r2-128c-2t",
            description="2U, 2 x 64 cores, 2 TiB, 24 x 3.84 TB NVMe",
            cores=128,
            ram_gib=2048,
            disk_gib=92160,
            idle_watts=280,
            peak_watts=1050,
            price=2_100_000,
            rack_units=2,
            reserved=Resources(vcpus=0, ram_mib=4096, disk_gib=0),
        ),
    ],
)
