"""Flavors: named instance sizes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from controlplane.domain.names import Name, Text
from controlplane.domain.resources import Resources


class Flavor(BaseModel):
    """A size an instance can be created with."""

    name: Name
    vcpus: int = Field(ge=1, le=256)
    ram_mib: int = Field(ge=64, le=4 * 1024 * 1024)
    disk_gib: int = Field(ge=0, le=65536)
    description: Text = ""

    @property
    def resources(self) -> Resources:
        """The amounts an instance of this flavor claims on its host."""
        return Resources(vcpus=self.vcpus, ram_mib=self.ram_mib, disk_gib=self.disk_gib)
