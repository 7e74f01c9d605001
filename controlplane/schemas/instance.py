"""Instance requests."""

from __future__ import annotations

from controlplane.domain.names import Code, Name
from controlplane.schemas.common import Strict


class InstanceCreate(Strict):
    """Create a VM of ``flavor`` from ``image`` in ``project``, optionally in one DC."""

    name: Name
    project: Code
    flavor: Name
    image: Name
    datacentre: Code | None = None


class InstanceResize(Strict):
    """Give a STOPPED instance the sizes of another ``flavor`` (on the host it has)."""

    flavor: Name
