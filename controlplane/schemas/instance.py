"""Instance requests (create, possibly ``count`` at once; resize) and placement answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.instance import Instance, InstanceState, PlacementExplanation
from controlplane.domain.names import Code, Name, Trait
from controlplane.schemas.common import Strict

#: Most instances one create request may ask for.
MAX_COUNT = 100
#: Most traits a request may require or forbid.
MAX_TRAITS = 32


class InstanceCreate(Strict):
    """Create ``count`` VMs of ``flavor`` from ``image`` in ``project``, optionally in one DC.

    ``count`` > 1 names them ``<name>-1`` .. ``<name>-N`` and places them as one decision;
    with ``all_or_nothing`` (the default) either all are placed or none is created (409
    ``placement.no_valid_host``), otherwise those that do not fit stay PENDING.
    """

    name: Name
    project: Code
    flavor: Name
    image: Name
    datacentre: Code | None = None
    count: int = Field(1, ge=1, le=MAX_COUNT)
    all_or_nothing: bool = True
    #: A server group of the same project, by id or name.
    server_group: Name | None = None
    required_traits: list[Trait] = Field(default_factory=list, max_length=MAX_TRAITS)
    forbidden_traits: list[Trait] = Field(default_factory=list, max_length=MAX_TRAITS)
    #: Override the data centre's placement policy.
    policy: PlacementPolicy | None = None


class InstanceBatch(BaseModel):
    """The answer to a create with ``count`` > 1: every instance, in name order."""

    items: list[Instance]
    placed: int
    pending: int


class InstanceResize(Strict):
    """Give a STOPPED instance the sizes of another ``flavor`` (on the host it has)."""

    flavor: Name


class InstancePlacement(BaseModel):
    """Where an instance is and the scheduler's last word on it (``server why``)."""

    instance_id: str
    name: str
    state: InstanceState
    datacentre: str | None = None
    host_name: str | None = None
    pending_reason: str | None = None
    explanation: PlacementExplanation | None = None
