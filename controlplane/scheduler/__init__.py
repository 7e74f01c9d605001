"""Placement: pure functions over an immutable fleet snapshot.

``select(view, request)`` returns a ``Plan`` (which host) or an ``Explanation`` (why
nowhere). It never writes: the store commits the plan atomically and re-checks capacity.
"""

from controlplane.scheduler.select import Explanation, Plan, select
from controlplane.scheduler.view import FleetView, HostView, PlacementRequest

__all__ = ["Explanation", "FleetView", "HostView", "PlacementRequest", "Plan", "select"]
