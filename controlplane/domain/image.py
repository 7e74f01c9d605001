"""Images: what an instance boots from.

``disk`` images (qcow2/raw) are attached as the root disk; ``kernel`` images boot directly
from a kernel and initrd (tiny guests, appliances). Paths are local to each host.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from controlplane.domain.names import LocalPath, Name, Text


class ImageFormat(StrEnum):
    """How the image is attached."""

    QCOW2 = "qcow2"
    RAW = "raw"
    KERNEL = "kernel"


class Image(BaseModel):
    """A bootable image registered with the control plane."""

    name: Name
    format: ImageFormat = ImageFormat.QCOW2
    size_mib: int = Field(0, ge=0, le=64 * 1024 * 1024)
    min_ram_mib: int = Field(0, ge=0)
    min_disk_gib: int = Field(0, ge=0)
    path: LocalPath | None = None
    kernel_path: LocalPath | None = None
    initrd_path: LocalPath | None = None
    cmdline: Text = ""
    description: Text = ""

    @model_validator(mode="after")
    def _kernel_images_have_kernel(self) -> Image:
        if self.format is ImageFormat.KERNEL and not self.kernel_path:
            raise ValueError("format 'kernel' needs kernel_path")
        return self
