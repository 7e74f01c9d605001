"""Feasibility checks, in cost order. Each returns ``None`` (host passes) or a reason."""

from __future__ import annotations

from collections.abc import Callable

from controlplane.domain.host import HostState
from controlplane.domain.resources import UNITS
from controlplane.scheduler.view import HostView, PlacementRequest

Check = Callable[[HostView, PlacementRequest], str | None]


def host_state(host: HostView, _request: PlacementRequest) -> str | None:
    """Only active hosts in active data centres take new instances."""
    if host.state is not HostState.ACTIVE:
        return f"host is {host.state.value}"
    if not host.datacentre_active:
        return f"data centre {host.datacentre} is not active"
    return None


def datacentre(host: HostView, request: PlacementRequest) -> str | None:
    """Honour the requested data centre."""
    if request.datacentre is not None and host.datacentre != request.datacentre:
        return f"in data centre {host.datacentre}, not {request.datacentre}"
    return None


def traits(host: HostView, request: PlacementRequest) -> str | None:
    """Required traits must be present, forbidden ones absent."""
    missing = sorted(request.required_traits - host.traits)
    if missing:
        return f"lacks trait(s) {', '.join(missing)}"
    present = sorted(request.forbidden_traits & host.traits)
    if present:
        return f"has forbidden trait(s) {', '.join(present)}"
    return None


def capacity(host: HostView, request: PlacementRequest) -> str | None:
    """Every dimension must fit in the host's free capacity under its ratios."""
    free = host.free
    short = request.resources.short_of(free)
    if not short:
        return None
    return "; ".join(
        f"{d}: needs {getattr(request.resources, d)} {UNITS[d]}, "
        f"{getattr(free, d)} free of {getattr(host.usable, d)}"
        for d in short
    )


#: The pipeline, cheapest first. Adding a check means adding a function here.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("host_state", host_state),
    ("datacentre", datacentre),
    ("traits", traits),
    ("capacity", capacity),
)
