"""``/v1/lab``: Cloud Open Lab vendors, trials (request, approve, extend, cancel),
evidence, stage sign-offs, templates and the catalogue of certified offerings.

Handlers are thin: the rules are in ``controlplane.lab`` (pure) and the transactions in
``store.lab``. A trial the caller may not see is reported as not found, exactly like one
that does not exist. Every mutating call is audited by the middleware, and the trial's own
history (``GET /v1/lab/trials/{id}/events``) records every transition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from agents.protocol.v1 import LoadList, UsageReport
from controlplane.api.context import (
    PrincipalDep,
    RequestId,
    SettingsDep,
    StoreDep,
    UserDep,
    audit_target,
)
from controlplane.domain.auth import Principal, require_agent_for
from controlplane.domain.errors import InvalidRequest
from controlplane.domain.lab import (
    CatalogEntry,
    Evidence,
    Extension,
    Stage,
    Trial,
    TrialDetail,
    TrialEvent,
    TrialNotFound,
    TrialState,
    Vendor,
    VendorNotFound,
)
from controlplane.lab import access
from controlplane.lab.access import TrialRef
from controlplane.lab.duration import parse_hours, show_hours
from controlplane.lab.lifecycle import LabPolicy
from controlplane.lab.measure import to_measurements
from controlplane.lab.runs import LabRun, SeriesPoint
from controlplane.lab.scenario import Scenario
from controlplane.lab.templates import Template, get_template, load_templates
from controlplane.planner.sizing import Measurements
from controlplane.schemas.lab import (
    Cancel,
    Decision,
    EvidenceCreate,
    ExtensionCreate,
    ExtensionDecided,
    Promote,
    Promoted,
    RunCancel,
    SignoffCreate,
    SignoffResult,
    TemplateView,
    TrialCreate,
    VendorCreate,
)
from controlplane.settings import Settings
from controlplane.store import Store
from controlplane.store.lab_promote import promote as promote_trial
from controlplane.store.lab_runs import LabRunRepo
from controlplane.store.org import ROOT_CODE
from quotas import load_classes

router = APIRouter(prefix="/lab", tags=["lab"])

#: Org codes (and so trial ids, ``<vendor>-<name>``) have at most this many characters.
MAX_TRIAL_ID = 32


def policy_of(settings: Settings) -> LabPolicy:
    """The loop's timing from the settings."""
    return LabPolicy(
        warnings=tuple(timedelta(hours=h) for h in settings.lab_warning_hours if h > 0),
        grace=timedelta(hours=settings.lab_grace_hours),
        max_life=timedelta(hours=settings.lab_max_life_hours),
    )


def _templates() -> dict[str, Template]:
    return load_templates(load_classes())


def _view(template: Template) -> TemplateView:
    return TemplateView(
        name=template.name,
        description=template.description,
        default_ttl=show_hours(template.default_ttl_hours),
        max_ttl=show_hours(template.max_ttl_hours),
        quota_class=template.quota_class,
        limits=template.limits,
        servers=template.servers,
        networks=template.networks,
        server_count=template.server_count,
    )


def _visible(store: Store, trial_id: str, who: Principal) -> tuple[Trial, TrialRef]:
    trial, ref = store.lab.get(trial_id)
    if not access.can_see(who, ref):
        raise TrialNotFound(trial_id)
    return trial, ref


def _target(request: Request, trial: Trial, ref: TrialRef) -> None:
    audit_target(request, "trial", trial.id, trial.project_path or ref.vendor_path)


#: An access rule over the caller and a trial's nodes: ``(who, ref, root, what)``.
Require = Callable[[Principal, TrialRef, str, str], None]


def _changing(
    request: Request,
    store: Store,
    who: Principal,
    trial_id: str,
    require: Require | None = None,
    what: str = "",
) -> tuple[Trial, TrialRef]:
    """The trial a mutating call acts on: visible to ``who`` (else ``trial.not_found``),
    named as the audit target, and allowed by ``require`` (else ``Forbidden``)."""
    trial, ref = _visible(store, trial_id, who)
    _target(request, trial, ref)
    if require is not None:
        require(who, ref, ROOT_CODE, what)
    return trial, ref


def _template_of(trial: Trial) -> Template:
    """The template the trial was requested with."""
    return get_template(_templates(), trial.template)


def _poke(request: Request) -> None:
    loop = getattr(request.app.state, "lab_loop", None)
    if loop is not None:
        loop.poke()


# -- templates ------------------------------------------------------------------------------


@router.get("/templates", name="lab.template_list", response_model=list[TemplateView])
def list_templates(who: UserDep) -> list[TemplateView]:  # noqa: ARG001 (authenticated)
    """The trial templates (``controlplane/lab/templates/*.yaml``)."""
    return [_view(t) for t in _templates().values()]


@router.get("/templates/{name}", name="lab.template_show", response_model=TemplateView)
def show_template(name: str, who: UserDep) -> TemplateView:  # noqa: ARG001
    """One template."""
    return _view(get_template(_templates(), name))


# -- vendors --------------------------------------------------------------------------------


@router.get("/vendors", name="lab.vendor_list", response_model=list[Vendor])
def list_vendors(store: StoreDep, who: UserDep) -> list[Vendor]:
    """Every vendor; a vendor's people see only their own."""
    mine = access.vendor_of(who, ROOT_CODE)
    return [v for v in store.lab.vendors() if mine is None or v.code == mine]


@router.get("/vendors/{code}", name="lab.vendor_show", response_model=Vendor)
def show_vendor(code: str, store: StoreDep, who: UserDep) -> Vendor:
    """One vendor."""
    mine = access.vendor_of(who, ROOT_CODE)
    if mine is not None and mine != code:
        raise VendorNotFound(code)
    return store.lab.vendor(code)


@router.post("/vendors", name="lab.vendor_create", status_code=201, response_model=Vendor)
def create_vendor(body: VendorCreate, request: Request, store: StoreDep, who: UserDep) -> Vendor:
    """Enrol a vendor (platform-admins and lab operators); creates ``openlab/<code>``."""
    audit_target(request, "vendor", body.code, access.lab_path(ROOT_CODE))
    access.require_lab_decider(who, None, ROOT_CODE, "enrol vendors")
    return store.lab.create_vendor(body.code, body.name, who.name)


# -- trials ---------------------------------------------------------------------------------


@router.post("/trials", name="lab.trial_create", status_code=201, response_model=Trial)
def create_trial(body: TrialCreate, request: Request, store: StoreDep, who: UserDep) -> Trial:
    """Ask for a trial environment (it waits for a lab operator's approval)."""
    trial_id = f"{body.vendor}-{body.name}"
    audit_target(request, "trial", trial_id)
    most = MAX_TRIAL_ID - len(body.vendor) - 1
    if len(body.name) > most:
        raise InvalidRequest(
            f"name: {body.name!r} is {len(body.name)} characters; with vendor "
            f"{body.vendor!r} a trial name may have at most {most} (the trial id "
            f"<vendor>-<name> becomes a project code of at most {MAX_TRIAL_ID})",
            field="name",
            value=body.name,
            limit=most,
        )
    template = get_template(_templates(), body.template)
    ttl = parse_hours(
        body.ttl or show_hours(template.default_ttl_hours),
        field="ttl",
        maximum=template.max_ttl_hours,
    )

    def authorize(ref: TrialRef) -> None:
        if access.vendor_of(who, ROOT_CODE) is not None and not access.is_vendor_of(who, ref):
            raise VendorNotFound(body.vendor)  # another vendor does not exist for you
        access.require_requester(who, ref, ROOT_CODE)

    return store.lab.request(
        name=body.name,
        vendor=body.vendor,
        ministry=body.ministry,
        offering=body.offering or body.name,
        description=body.description,
        template=template.name,
        ttl_hours=ttl,
        actor=who.name,
        authorize=authorize,
    )


@router.get("/trials", name="lab.trial_list", response_model=list[Trial])
def list_trials(
    store: StoreDep,
    who: UserDep,
    state: TrialState | None = None,
    stage: Stage | None = None,
    vendor: str | None = None,
    ministry: str | None = None,
) -> list[Trial]:
    """The trials the caller may see, newest request first."""
    found = store.lab.list(state=state, stage=stage, vendor=vendor, ministry=ministry)
    return [trial for trial, ref in found if access.can_see(who, ref)]


@router.get("/trials/{trial_id}", name="lab.trial_show", response_model=TrialDetail)
def show_trial(trial_id: str, store: StoreDep, who: UserDep) -> TrialDetail:
    """One trial with its history, evidence, sign-offs, extensions, servers and usage."""
    _visible(store, trial_id, who)
    return store.lab.detail(trial_id)


@router.get("/trials/{trial_id}/events", name="lab.trial_events", response_model=list[TrialEvent])
def trial_events(trial_id: str, store: StoreDep, who: UserDep) -> list[TrialEvent]:
    """The trial's history, oldest first."""
    _visible(store, trial_id, who)
    return store.lab.events(trial_id)


@router.post("/trials/{trial_id}/approve", name="lab.trial_approve", response_model=Trial)
def approve_trial(
    trial_id: str, body: Decision, request: Request, store: StoreDep, who: UserDep
) -> Trial:
    """Approve a request (lab operators): its project is created with the template's quota."""
    trial, _ref = _changing(
        request, store, who, trial_id, access.require_lab_decider, "approve trials"
    )
    template = _template_of(trial)
    approved = store.lab.approve(
        trial_id,
        actor=who.name,
        comment=body.comment,
        limits=template.limits,
        soft_threshold=template.soft_threshold,
    )
    _poke(request)
    return approved


@router.post("/trials/{trial_id}/reject", name="lab.trial_reject", response_model=Trial)
def reject_trial(
    trial_id: str, body: Decision, request: Request, store: StoreDep, who: UserDep
) -> Trial:
    """Refuse a request (lab operators)."""
    _changing(request, store, who, trial_id, access.require_lab_decider, "reject trials")
    return store.lab.reject(trial_id, actor=who.name, reason=body.comment)


@router.post("/trials/{trial_id}/cancel", name="lab.trial_cancel", response_model=Trial)
def cancel_trial(
    trial_id: str, body: Cancel, request: Request, store: StoreDep, who: UserDep
) -> Trial:
    """Withdraw a request, or end a running trial early."""
    _changing(request, store, who, trial_id, access.require_contributor, "cancel trials")
    cancelled = store.lab.cancel(trial_id, actor=who.name, reason=body.reason)
    _poke(request)
    return cancelled


# -- extensions -----------------------------------------------------------------------------


@router.post(
    "/trials/{trial_id}/extensions",
    name="lab.extension_create",
    status_code=201,
    response_model=Extension,
)
def request_extension(
    trial_id: str,
    body: ExtensionCreate,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: UserDep,
) -> Extension:
    """Ask for more time; it takes effect when a lab operator approves it."""
    trial, _ref = _changing(
        request, store, who, trial_id, access.require_contributor, "ask for extensions"
    )
    template = _template_of(trial)
    hours = parse_hours(body.by, field="by", maximum=template.max_ttl_hours)
    return store.lab.request_extension(
        trial_id, hours=hours, reason=body.reason, actor=who.name, policy=policy_of(settings)
    )


def _decide_extension(
    trial_id: str,
    body: Decision,
    request: Request,
    store: Store,
    settings: Settings,
    who: Principal,
    *,
    approve: bool,
) -> ExtensionDecided:
    verb = "approve" if approve else "reject"
    trial, _ref = _changing(
        request, store, who, trial_id, access.require_lab_decider, f"{verb} extensions"
    )
    template = _template_of(trial)
    decided, extension = store.lab.decide_extension(
        trial_id,
        approve=approve,
        actor=who.name,
        comment=body.comment,
        policy=policy_of(settings),
        limits=template.limits,
    )
    _poke(request)
    return ExtensionDecided(trial=decided, extension=extension)


@router.post(
    "/trials/{trial_id}/extensions/approve",
    name="lab.extension_approve",
    response_model=ExtensionDecided,
)
def approve_extension(
    trial_id: str,
    body: Decision,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: UserDep,
) -> ExtensionDecided:
    """Approve the pending extension (lab operators): the end moves."""
    return _decide_extension(trial_id, body, request, store, settings, who, approve=True)


@router.post(
    "/trials/{trial_id}/extensions/reject",
    name="lab.extension_reject",
    response_model=ExtensionDecided,
)
def reject_extension(
    trial_id: str,
    body: Decision,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: UserDep,
) -> ExtensionDecided:
    """Reject the pending extension (lab operators)."""
    return _decide_extension(trial_id, body, request, store, settings, who, approve=False)


# -- evidence and sign-off ------------------------------------------------------------------


@router.get("/trials/{trial_id}/evidence", name="lab.evidence_list", response_model=list[Evidence])
def list_evidence(trial_id: str, store: StoreDep, who: UserDep) -> list[Evidence]:
    """The trial's evidence, oldest first."""
    _visible(store, trial_id, who)
    return store.lab.evidence(trial_id)


@router.post(
    "/trials/{trial_id}/evidence",
    name="lab.evidence_add",
    status_code=201,
    response_model=Evidence,
)
def add_evidence(
    trial_id: str, body: EvidenceCreate, request: Request, store: StoreDep, who: UserDep
) -> Evidence:
    """Attach a scenario result or a document (by SHA-256) to the current stage."""
    _changing(request, store, who, trial_id, access.require_contributor, "add evidence")
    return store.lab.add_evidence(
        trial_id,
        kind=body.kind,
        name=body.name,
        sha256=body.sha256,
        size_bytes=body.size_bytes,
        stage=body.stage,
        uri=body.uri,
        run_id=body.run_id,
        results=body.results,
        actor=who.name,
    )


@router.post("/trials/{trial_id}/signoff", name="lab.signoff", response_model=SignoffResult)
def signoff(
    trial_id: str, body: SignoffCreate, request: Request, store: StoreDep, who: UserDep
) -> SignoffResult:
    """Sign the current stage off: the ministry's admin for PoC and Verification, a lab
    operator for Certification; never the trial's own vendor."""
    _trial, ref = _changing(request, store, who, trial_id)

    def authorize(_trial: Trial, stage: Stage) -> None:
        access.require_signer(who, ref, stage, ROOT_CODE)

    signed, record = store.lab.signoff(
        trial_id,
        stage=body.stage,
        comment=body.comment,
        actor=who.name,
        role=who.role.value,
        authorize=authorize,
    )
    return SignoffResult(trial=signed, signoff=record)


# -- catalogue ------------------------------------------------------------------------------


@router.get("/catalog", name="lab.catalog", response_model=list[CatalogEntry])
def catalog(
    store: StoreDep,
    who: UserDep,
    vendor: Annotated[str | None, Query(description="only this vendor's offerings")] = None,
) -> list[CatalogEntry]:
    """Certified offerings any ministry may reuse without re-testing."""
    return [
        entry
        for entry, vendor_path in store.lab.catalog()
        if access.can_see_catalog_entry(who, vendor_path, ROOT_CODE)
        and (vendor is None or entry.vendor == vendor)
    ]


@router.get("/catalog/{trial_id}", name="lab.catalog_show", response_model=CatalogEntry)
def catalog_entry(trial_id: str, store: StoreDep, who: UserDep) -> CatalogEntry:
    """One certified offering."""
    for entry, vendor_path in store.lab.catalog(trial_id):
        if access.can_see_catalog_entry(who, vendor_path, ROOT_CODE):
            return entry
    raise TrialNotFound(trial_id)


# -- scenario runs --------------------------------------------------------------------------


def runs_of(store: Store) -> LabRunRepo:
    """The scenario-run repository over ``store``'s database."""
    return LabRunRepo(store.db, store.clock, store.instances, store.server_groups)


def _visible_run(store: Store, run_id: str, who: Principal) -> tuple[LabRun, Trial, TrialRef]:
    runs = runs_of(store)
    trial_id = runs.trial_of(run_id)
    trial, ref = _visible(store, trial_id, who)
    return runs.get(run_id), trial, ref


@router.post(
    "/trials/{trial_id}/runs", name="lab.run_create", status_code=201, response_model=LabRun
)
def create_run(
    trial_id: str, body: Scenario, request: Request, store: StoreDep, who: UserDep, rid: RequestId
) -> LabRun:
    """Start a scenario run: provision its groups in the trial's project, apply the load
    for ``duration_s``, measure, then remove the VMs. Progress: ``GET /v1/lab/runs/{id}``."""
    _changing(request, store, who, trial_id, access.require_contributor, "run scenarios")
    run = runs_of(store).start(trial_id, body, actor=who.name, request_id=rid)
    _poke(request)
    return run


@router.get("/trials/{trial_id}/runs", name="lab.run_list", response_model=list[LabRun])
def list_runs(trial_id: str, store: StoreDep, who: UserDep) -> list[LabRun]:
    """A trial's scenario runs, newest first."""
    _visible(store, trial_id, who)
    return runs_of(store).list(trial_id)


@router.get("/runs/{run_id}", name="lab.run_show", response_model=LabRun)
def show_run(run_id: str, store: StoreDep, who: UserDep) -> LabRun:
    """One run: state, VMs running/failed, samples, per-group peak/p95/mean."""
    run, _trial, _ref = _visible_run(store, run_id, who)
    return run


@router.get("/runs/{run_id}/series", name="lab.run_series", response_model=list[SeriesPoint])
def run_series(
    run_id: str,
    store: StoreDep,
    who: UserDep,
    group: Annotated[str | None, Query(description="only this group")] = None,
) -> list[SeriesPoint]:
    """The run's utilisation time series (every sample of every VM)."""
    _visible_run(store, run_id, who)
    return runs_of(store).series(run_id, group)


@router.post("/runs/{run_id}/cancel", name="lab.run_cancel", response_model=LabRun)
def cancel_run(
    run_id: str, body: RunCancel, request: Request, store: StoreDep, who: UserDep
) -> LabRun:
    """Cancel a run in progress: everything it created is removed."""
    del body
    run, trial, ref = _visible_run(store, run_id, who)
    audit_target(request, "lab_run", run.id, trial.project_path or ref.vendor_path)
    access.require_contributor(who, ref, ROOT_CODE, "cancel scenario runs")
    return runs_of(store).cancel(run_id, who.name)


@router.get("/trials/{trial_id}/measurements", name="lab.measurements", response_model=Measurements)
def measurements(trial_id: str, store: StoreDep, who: UserDep) -> Measurements:
    """The trial's measured usage (its latest completed run) as sizing input."""
    trial, _ref = _visible(store, trial_id, who)
    run = runs_of(store).latest_measured(trial_id)
    if run is None:
        raise InvalidRequest(
            f"trial {trial_id} has no completed scenario run to size from; run one with "
            f"`govcloud lab run {trial_id} scenario.yaml`",
            field="trial",
            value=trial_id,
            code="lab_run.none_completed",
        )
    return to_measurements(f"{trial.offering} ({trial.id}, run {run.name})", run.groups)


@router.post("/trials/{trial_id}/promote", name="lab.promote", response_model=Promoted)
def promote(
    trial_id: str, body: Promote, request: Request, store: StoreDep, who: UserDep
) -> Promoted:
    """Move the trial's servers into production project ``to``: the target's quota chain
    is charged and the trial's released in one transaction. Lab operators and the
    ministry's admins (over the target project) only."""
    _trial, ref = _changing(request, store, who, trial_id)
    access.require_promoter(who, ref, ROOT_CODE)
    moved = promote_trial(store.db, store.clock, trial_id, body.to, actor=who.name)
    return Promoted(trial_id=trial_id, project=body.to, instances=moved)


# -- agents: scenario loads and usage samples -----------------------------------------------


@router.get("/hosts/{host_id}/loads", name="lab.agent_loads", response_model=LoadList)
def agent_loads(host_id: str, store: StoreDep, who: PrincipalDep) -> LoadList:
    """The host's VMs under a scenario load now, with their profiles (agents only)."""
    require_agent_for(who, host_id)
    return runs_of(store).loads(host_id)


@router.post("/hosts/{host_id}/usage", name="lab.agent_usage", status_code=204)
def agent_usage(
    host_id: str, body: UsageReport, request: Request, store: StoreDep, who: PrincipalDep
) -> Response:
    """Utilisation samples of the host's VMs (agents only; telemetry, not audited)."""
    request.state.audit_skip = True
    require_agent_for(who, host_id)
    runs_of(store).record(host_id, body.samples)
    return Response(status_code=204)
