"""Placement: pure functions over an immutable fleet snapshot.

``select(view, request, seed)`` returns a ``Plan``: hosts for up to ``request.count``
instances and a bounded explanation (what each check rejected and why). It never writes:
the store commits the plan atomically and re-checks capacity and hard group rules.

Modules: ``view`` (inputs), ``context`` (a decision's own claims), ``checks``
(feasibility, cost order), ``scores`` (ranking per policy), ``explain`` (tallies and
messages), ``select`` (the pipeline), ``record`` (what metrics see of a decision).
"""

from controlplane.scheduler.select import Placement, Plan, select
from controlplane.scheduler.view import FleetView, GroupView, HostView, PlacementRequest

__all__ = ["FleetView", "GroupView", "HostView", "Placement", "PlacementRequest", "Plan", "select"]
