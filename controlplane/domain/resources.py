"""Resource vectors: vCPU, RAM (MiB) and disk (GiB) amounts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DIMENSIONS: tuple[str, ...] = ("vcpus", "ram_mib", "disk_gib")
UNITS: dict[str, str] = {"vcpus": "vCPU", "ram_mib": "MiB RAM", "disk_gib": "GiB disk"}


class Resources(BaseModel):
    """An amount of each schedulable dimension; never negative."""

    model_config = ConfigDict(frozen=True)

    vcpus: int = Field(0, ge=0, le=1_000_000)
    ram_mib: int = Field(0, ge=0, le=1_000_000_000)
    disk_gib: int = Field(0, ge=0, le=1_000_000_000)

    def __add__(self, other: Resources) -> Resources:
        return Resources(**{d: getattr(self, d) + getattr(other, d) for d in DIMENSIONS})

    def __sub__(self, other: Resources) -> Resources:
        """Subtract, clamping at zero (free capacity can't go negative)."""
        return Resources(**{d: max(0, getattr(self, d) - getattr(other, d)) for d in DIMENSIONS})

    def short_of(self, free: Resources) -> list[str]:
        """Dimensions where ``self`` (a demand) does not fit into ``free``."""
        return [d for d in DIMENSIONS if getattr(self, d) > getattr(free, d)]

    def describe(self) -> str:
        """Human form, e.g. ``4 vCPU, 8192 MiB RAM, 40 GiB disk``."""
        return ", ".join(f"{getattr(self, d)} {UNITS[d]}" for d in DIMENSIONS)
