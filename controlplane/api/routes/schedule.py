"""``POST /v1/schedule``: a dry run of the scheduler ("where would these go, and if
nowhere, why"). Nothing is written; the call is audited like every POST."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.errors import NotFound
from controlplane.domain.org import can_see_org
from controlplane.schemas.schedule import ScheduledInstance, ScheduleRequest, ScheduleResult
from controlplane.store.instance import Hints

router = APIRouter(prefix="/schedule", tags=["scheduler"])


@router.post("", name="schedule.dry_run", response_model=ScheduleResult)
def dry_run(
    body: ScheduleRequest, request: Request, store: StoreDep, who: UserDep
) -> ScheduleResult:
    """Run the scheduler on a fresh snapshot without committing anything."""
    org_path = who.org_path
    if body.project is not None:
        project = store.orgs.get(body.project)
        if not can_see_org(project.path, who.org_path):
            raise NotFound("org", body.project)
        org_path = project.path
    audit_target(request, "schedule", body.flavor, org_path)
    plan = store.instances.dry_run(
        flavor=body.flavor,
        count=body.count,
        datacentre=body.datacentre,
        project=body.project,
        server_group=body.server_group,
        hints=Hints(
            required_traits=frozenset(body.required_traits),
            forbidden_traits=frozenset(body.forbidden_traits),
            policy=body.policy,
        ),
    )
    return ScheduleResult(
        requested=body.count,
        complete=plan.complete,
        placements=[
            ScheduledInstance(index=i, host=p.host_name, datacentre=p.datacentre)
            for i, p in enumerate(plan.placements, start=1)
        ],
        explanation=plan.explanation,
    )
