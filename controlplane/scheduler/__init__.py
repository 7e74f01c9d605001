"""Placement: pure functions over an immutable fleet snapshot.

``select(view, request, seed)`` returns a ``Plan``: hosts for up to ``request.count``
instances and a bounded explanation (what each check rejected and why). It never writes:
the store commits the plan atomically and re-checks capacity and hard group rules.

Modules: ``view`` (inputs), ``fleet`` (the snapshot as numpy columns, derived cheaply
from the previous one), ``context`` (a decision's own claims), ``checks`` (feasibility,
cost order; per host and as fleet masks), ``scores`` (ranking per policy; per host and as
columns), ``ranking`` (the candidates of one decision, best first), ``explain`` (tallies
and messages), ``select`` (the pipeline), ``groups`` (hard rules re-checked at commit),
``record`` (what metrics see of a decision).
"""

from controlplane.scheduler.fleet import Fleet
from controlplane.scheduler.select import Placement, Plan, select
from controlplane.scheduler.view import FleetView, GroupView, HostView, PlacementRequest

__all__ = [
    "Fleet",
    "FleetView",
    "GroupView",
    "HostView",
    "Placement",
    "PlacementRequest",
    "Plan",
    "select",
]
