"""HTTP client for the govcloud API, shared by the CLI, the demo and scripts.

Owns :class:`GovcloudClient` (one method per user-facing ``/v1`` call, returning the
pydantic models of :mod:`controlplane.domain` and :mod:`controlplane.schemas`), the two
errors it raises (:class:`ApiError` for an error answer, :class:`ApiUnreachable` when no
answer came) and :func:`wait_for_instance`, the polling loop behind ``--wait``.

The ``/v1/agent`` endpoints are not here: the host agent's client
(:class:`agents.client.HttpControlPlane`) owns them.

Pass ``http=`` to talk through any ``httpx.Client`` (``fastapi.testclient.TestClient`` is
one, so tests run the real app in-process); otherwise one is built for ``base_url``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from controlplane.domain.audit import AuditEvent
from controlplane.domain.auth import User
from controlplane.domain.consolidation import (
    Consolidation,
    ConsolidationParams,
    ConsolidationPlan,
)
from controlplane.domain.datacentre import DataCentre
from controlplane.domain.flavor import Flavor
from controlplane.domain.host import Host
from controlplane.domain.image import Image
from controlplane.domain.instance import Instance, InstanceAction, InstanceState
from controlplane.domain.lab import (
    CatalogEntry,
    Evidence,
    Extension,
    Stage,
    Trial,
    TrialDetail,
    TrialEvent,
    TrialState,
    Vendor,
)
from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.domain.migration import Drain, Migration
from controlplane.domain.org import Organisation
from controlplane.domain.quota import QuotaChange, QuotaDrift, QuotaEvent, QuotaReport, QuotaSet
from controlplane.domain.server_group import ServerGroup
from controlplane.lab.runs import LabRun, SeriesPoint
from controlplane.lab.scenario import Scenario
from controlplane.planner.sizing import Measurements
from controlplane.schemas.catalog import (
    DataCentreCreate,
    DataCentreUpdate,
    FlavorCreate,
    ImageCreate,
)
from controlplane.schemas.common import Page
from controlplane.schemas.host import BootstrapToken, BootstrapTokenCreate, HostUpdate
from controlplane.schemas.instance import (
    InstanceBatch,
    InstanceCreate,
    InstancePlacement,
    InstanceResize,
)
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
from controlplane.schemas.migration import (
    DrainRequest,
    EvacuateRequest,
    MaintenanceRequest,
    MigrateRequest,
)
from controlplane.schemas.org import OrgCreate, OrgDetail, OrgUpdate
from controlplane.schemas.quota import QuotaApply, QuotaVerify
from controlplane.schemas.schedule import ScheduleRequest, ScheduleResult
from controlplane.schemas.server_group import ServerGroupCreate
from controlplane.schemas.sla import MaintenanceWindowCreate, SlaReport
from controlplane.schemas.usage import UsageReport
from controlplane.schemas.user import UserCreate, UserCreated, UserToken, UserUpdate, WhoAmI

M = TypeVar("M")

_WHOAMI = TypeAdapter(WhoAmI)
_ORGS = TypeAdapter(list[Organisation])
_ORG = TypeAdapter(Organisation)
_ORG_DETAIL = TypeAdapter(OrgDetail)
_USERS = TypeAdapter(list[User])
_USER_CREATED = TypeAdapter(UserCreated)
_USER_TOKEN = TypeAdapter(UserToken)
_USER = TypeAdapter(User)
_DCS = TypeAdapter(list[DataCentre])
_DC = TypeAdapter(DataCentre)
_FLAVORS = TypeAdapter(list[Flavor])
_FLAVOR = TypeAdapter(Flavor)
_IMAGES = TypeAdapter(list[Image])
_IMAGE = TypeAdapter(Image)
_HOSTS = TypeAdapter(list[Host])
_HOST = TypeAdapter(Host)
_BOOTSTRAP = TypeAdapter(BootstrapToken)
_INSTANCE_PAGE = TypeAdapter(Page[Instance])
_INSTANCE = TypeAdapter(Instance)
_ACTIONS = TypeAdapter(list[InstanceAction])
_INSTANCE_BATCH = TypeAdapter(InstanceBatch)
_PLACEMENT = TypeAdapter(InstancePlacement)
_SCHEDULE_RESULT = TypeAdapter(ScheduleResult)
_SERVER_GROUPS = TypeAdapter(list[ServerGroup])
_SERVER_GROUP = TypeAdapter(ServerGroup)
_AUDIT = TypeAdapter(list[AuditEvent])
_QUOTA_REPORT = TypeAdapter(QuotaReport)
_QUOTA_CHANGES = TypeAdapter(list[QuotaChange])
_QUOTA_DRIFTS = TypeAdapter(list[QuotaDrift])
_QUOTA_EVENTS = TypeAdapter(list[QuotaEvent])
_USAGE_REPORT = TypeAdapter(UsageReport)
_VENDORS = TypeAdapter(list[Vendor])
_VENDOR = TypeAdapter(Vendor)
_TEMPLATES = TypeAdapter(list[TemplateView])
_TEMPLATE = TypeAdapter(TemplateView)
_TRIALS = TypeAdapter(list[Trial])
_TRIAL = TypeAdapter(Trial)
_TRIAL_DETAIL = TypeAdapter(TrialDetail)
_TRIAL_EVENTS = TypeAdapter(list[TrialEvent])
_EXTENSION = TypeAdapter(Extension)
_EXTENSION_DECIDED = TypeAdapter(ExtensionDecided)
_EVIDENCE = TypeAdapter(Evidence)
_EVIDENCE_LIST = TypeAdapter(list[Evidence])
_SIGNOFF_RESULT = TypeAdapter(SignoffResult)
_CATALOG = TypeAdapter(list[CatalogEntry])
_CATALOG_ENTRY = TypeAdapter(CatalogEntry)
_LAB_RUN = TypeAdapter(LabRun)
_LAB_RUNS = TypeAdapter(list[LabRun])
_LAB_SERIES = TypeAdapter(list[SeriesPoint])
_MEASUREMENTS = TypeAdapter(Measurements)
_PROMOTED = TypeAdapter(Promoted)
_SLA_REPORT = TypeAdapter(SlaReport)
_WINDOW = TypeAdapter(MaintenanceWindow)
_WINDOWS = TypeAdapter(list[MaintenanceWindow])
_MIGRATION = TypeAdapter(Migration)
_MIGRATIONS = TypeAdapter(list[Migration])
_DRAIN = TypeAdapter(Drain)
_DRAIN_OR_NONE = TypeAdapter(Drain | None)
_DRAINS = TypeAdapter(list[Drain])
_CONSOLIDATION_PLAN = TypeAdapter(ConsolidationPlan)
_CONSOLIDATION = TypeAdapter(Consolidation)
_CONSOLIDATIONS = TypeAdapter(list[Consolidation])

API_PREFIX = "/v1"
REQUEST_ID_HEADER = "X-Request-Id"
DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "govcloud-client/1"


class ApiError(Exception):
    """The API answered with an error body ``{code, message, details, request_id}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id

    def __str__(self) -> str:
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} (HTTP {self.status}, {self.code}{rid})"


class ApiUnreachable(Exception):
    """No answer: the control plane could not be reached or did not reply in time."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"cannot reach the govcloud API at {base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason


class WaitTimeout(Exception):
    """An instance did not reach the awaited state in time; ``last`` is what was seen."""

    def __init__(self, last: Instance, timeout_s: float, awaited: str) -> None:
        super().__init__(
            f"instance {last.name} ({last.id}) is still {last.state.value} after "
            f"{timeout_s:g} s; waited for {awaited}"
        )
        self.last = last
        self.timeout_s = timeout_s
        self.awaited = awaited


def _error_from(response: httpx.Response) -> ApiError:
    """Read the standard error body; tolerate proxies that answer with plain text."""
    rid = response.headers.get(REQUEST_ID_HEADER, "")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body and "message" in body:
        details = body.get("details")
        return ApiError(
            response.status_code,
            str(body["code"]),
            str(body["message"]),
            details if isinstance(details, dict) else {},
            str(body.get("request_id") or rid),
        )
    text = (response.text or response.reason_phrase or "").strip()[:300]
    return ApiError(response.status_code, f"http.{response.status_code}", text or "error", {}, rid)


class GovcloudClient:
    """A typed client for the user-facing govcloud API (one method per call)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_s)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying httpx client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- identity and organisations --------------------------------------------------------

    def whoami(self) -> WhoAmI:
        """``GET /v1/whoami``: the authenticated caller."""
        return self._get("/whoami", _WHOAMI)

    def list_orgs(self) -> list[Organisation]:
        """``GET /v1/orgs``: the caller's subtree (and its ancestors)."""
        return self._get("/orgs", _ORGS)

    def get_org(self, code: str) -> OrgDetail:
        """``GET /v1/orgs/{code}``: the node and its settings."""
        return self._get(f"/orgs/{_seg(code)}", _ORG_DETAIL)

    def update_org(self, code: str, body: OrgUpdate) -> OrgDetail:
        """``PATCH /v1/orgs/{code}``: e.g. a ministry's evacuation policy."""
        return self._send("PATCH", f"/orgs/{_seg(code)}", _ORG_DETAIL, body)

    def create_org(self, body: OrgCreate) -> Organisation:
        """``POST /v1/orgs``: a ministry, agency or project."""
        return self._send("POST", "/orgs", _ORG, body)

    def list_users(self) -> list[User]:
        """``GET /v1/users``: users in the caller's subtree."""
        return self._get("/users", _USERS)

    def create_user(self, body: UserCreate) -> UserCreated:
        """``POST /v1/users``: the new user and its token (shown only once)."""
        return self._send("POST", "/users", _USER_CREATED, body)

    def rotate_token(self, name: str) -> UserToken:
        """``POST /v1/users/{name}/token``: the user and its new token (shown only once)."""
        return self._send("POST", f"/users/{_seg(name)}/token", _USER_TOKEN)

    def update_user(self, name: str, body: UserUpdate) -> User:
        """``PATCH /v1/users/{name}``: give the user another role."""
        return self._send("PATCH", f"/users/{_seg(name)}", _USER, body)

    def delete_user(self, name: str) -> None:
        """``DELETE /v1/users/{name}``."""
        self._request("DELETE", f"/users/{_seg(name)}")

    # -- catalogue -------------------------------------------------------------------------

    def list_datacentres(self) -> list[DataCentre]:
        """``GET /v1/datacentres``."""
        return self._get("/datacentres", _DCS)

    def get_datacentre(self, code: str) -> DataCentre:
        """``GET /v1/datacentres/{code}``."""
        return self._get(f"/datacentres/{_seg(code)}", _DC)

    def create_datacentre(self, body: DataCentreCreate) -> DataCentre:
        """``POST /v1/datacentres``."""
        return self._send("POST", "/datacentres", _DC, body)

    def update_datacentre(self, code: str, body: DataCentreUpdate) -> DataCentre:
        """``PATCH /v1/datacentres/{code}``."""
        return self._send("PATCH", f"/datacentres/{_seg(code)}", _DC, body)

    def delete_datacentre(self, code: str) -> None:
        """``DELETE /v1/datacentres/{code}``."""
        self._request("DELETE", f"/datacentres/{_seg(code)}")

    def list_flavors(self) -> list[Flavor]:
        """``GET /v1/flavors``."""
        return self._get("/flavors", _FLAVORS)

    def get_flavor(self, name: str) -> Flavor:
        """``GET /v1/flavors/{name}``."""
        return self._get(f"/flavors/{_seg(name)}", _FLAVOR)

    def create_flavor(self, body: FlavorCreate) -> Flavor:
        """``POST /v1/flavors``."""
        return self._send("POST", "/flavors", _FLAVOR, body)

    def delete_flavor(self, name: str) -> None:
        """``DELETE /v1/flavors/{name}``."""
        self._request("DELETE", f"/flavors/{_seg(name)}")

    def list_images(self) -> list[Image]:
        """``GET /v1/images``."""
        return self._get("/images", _IMAGES)

    def get_image(self, name: str) -> Image:
        """``GET /v1/images/{name}``."""
        return self._get(f"/images/{_seg(name)}", _IMAGE)

    def create_image(self, body: ImageCreate) -> Image:
        """``POST /v1/images``."""
        return self._send("POST", "/images", _IMAGE, body)

    def delete_image(self, name: str) -> None:
        """``DELETE /v1/images/{name}``."""
        self._request("DELETE", f"/images/{_seg(name)}")

    # -- hosts -----------------------------------------------------------------------------

    def list_hosts(self, *, datacentre: str | None = None, state: str | None = None) -> list[Host]:
        """``GET /v1/hosts``, optionally in one data centre or state."""
        return self._get("/hosts", _HOSTS, datacentre=datacentre, state=state)

    def get_host(self, ident: str) -> Host:
        """``GET /v1/hosts/{id or name}``."""
        return self._get(f"/hosts/{_seg(ident)}", _HOST)

    def update_host(self, ident: str, body: HostUpdate) -> Host:
        """``PATCH /v1/hosts/{id or name}``."""
        return self._send("PATCH", f"/hosts/{_seg(ident)}", _HOST, body)

    def create_bootstrap_token(self, body: BootstrapTokenCreate) -> BootstrapToken:
        """``POST /v1/hosts/bootstrap-tokens``: a one-time token to enrol one host."""
        return self._send("POST", "/hosts/bootstrap-tokens", _BOOTSTRAP, body)

    # -- migrations, drains, evacuations (docs/fleet.md) -----------------------------------

    def migrate_instance(self, instance_id: str, target: str | None = None) -> Migration:
        """``POST /v1/instances/{id}/migrate``: live-migrate within the data centre."""
        body = MigrateRequest(target=target) if target else MigrateRequest()
        return self._send("POST", f"/instances/{_seg(instance_id)}/migrate", _MIGRATION, body)

    def list_migrations(
        self,
        *,
        instance: str | None = None,
        host: str | None = None,
        drain: str | None = None,
        active: bool | None = None,
    ) -> list[Migration]:
        """``GET /v1/migrations``: newest first."""
        return self._get(
            "/migrations", _MIGRATIONS, instance=instance, host=host, drain=drain, active=active
        )

    def get_migration(self, migration_id: str) -> Migration:
        """``GET /v1/migrations/{id}``."""
        return self._get(f"/migrations/{_seg(migration_id)}", _MIGRATION)

    def drain_host(self, ident: str, body: DrainRequest) -> Drain:
        """``POST /v1/hosts/{host}/drain``."""
        return self._send("POST", f"/hosts/{_seg(ident)}/drain", _DRAIN, body)

    def maintain_host(self, ident: str, body: MaintenanceRequest) -> Drain:
        """``POST /v1/hosts/{host}/maintenance``: drain, then MAINTENANCE until a time."""
        return self._send("POST", f"/hosts/{_seg(ident)}/maintenance", _DRAIN, body)

    def undrain_host(self, ident: str) -> Drain | None:
        """``POST /v1/hosts/{host}/undrain``: back to ACTIVE."""
        return self._send("POST", f"/hosts/{_seg(ident)}/undrain", _DRAIN_OR_NONE)

    def get_drain(self, drain_id: str) -> Drain:
        """``GET /v1/drains/{id}``: progress."""
        return self._get(f"/drains/{_seg(drain_id)}", _DRAIN)

    def list_drains(
        self, *, subject: str | None = None, running: bool | None = None
    ) -> list[Drain]:
        """``GET /v1/drains``: newest first."""
        return self._get("/drains", _DRAINS, subject=subject, running=running)

    def evacuate_datacentre(self, code: str, body: EvacuateRequest) -> Drain:
        """``POST /v1/datacentres/{code}/evacuate``: move everything to another DC."""
        return self._send("POST", f"/datacentres/{_seg(code)}/evacuate", _DRAIN, body)

    # -- consolidation for energy (docs/fleet.md) ------------------------------------------

    def plan_consolidation(self, code: str, body: ConsolidationParams) -> ConsolidationPlan:
        """``POST /v1/datacentres/{code}/consolidation/plan``: dry run."""
        path = f"/datacentres/{_seg(code)}/consolidation/plan"
        return self._send("POST", path, _CONSOLIDATION_PLAN, body)

    def start_consolidation(self, code: str, body: ConsolidationParams) -> Consolidation:
        """``POST /v1/datacentres/{code}/consolidation``: store the plan and execute it."""
        path = f"/datacentres/{_seg(code)}/consolidation"
        return self._send("POST", path, _CONSOLIDATION, body)

    def get_consolidation(self, code: str) -> Consolidation:
        """``GET /v1/datacentres/{code}/consolidation``: the open (else latest) one."""
        return self._get(f"/datacentres/{_seg(code)}/consolidation", _CONSOLIDATION)

    def steer_consolidation(self, code: str, action: str) -> Consolidation:
        """``POST /v1/datacentres/{code}/consolidation/{pause|resume|cancel}``."""
        path = f"/datacentres/{_seg(code)}/consolidation/{_seg(action)}"
        return self._send("POST", path, _CONSOLIDATION)

    def list_consolidations(self, *, datacentre: str | None = None) -> list[Consolidation]:
        """``GET /v1/consolidations``: newest first."""
        return self._get("/consolidations", _CONSOLIDATIONS, datacentre=datacentre)

    # -- instances -------------------------------------------------------------------------

    def list_instances(
        self,
        *,
        state: InstanceState | None = None,
        datacentre: str | None = None,
        host: str | None = None,
        org: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> Page[Instance]:
        """``GET /v1/instances``: one page; see :meth:`iter_instances` for all of them."""
        return self._get(
            "/instances",
            _INSTANCE_PAGE,
            state=state.value if state else None,
            datacentre=datacentre,
            host=host,
            org=org,
            name=name,
            limit=limit,
            marker=marker,
        )

    def iter_instances(
        self,
        *,
        state: InstanceState | None = None,
        datacentre: str | None = None,
        host: str | None = None,
        org: str | None = None,
        name: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Instance]:
        """Every matching instance, following ``next_marker`` page after page."""
        marker: str | None = None
        while True:
            page = self.list_instances(
                state=state,
                datacentre=datacentre,
                host=host,
                org=org,
                name=name,
                limit=page_size,
                marker=marker,
            )
            yield from page.items
            if not page.next_marker or not page.items:
                return
            marker = page.next_marker

    def get_instance(self, instance_id: str) -> Instance:
        """``GET /v1/instances/{id}``."""
        return self._get(f"/instances/{_seg(instance_id)}", _INSTANCE)

    def create_instance(self, body: InstanceCreate) -> Instance:
        """``POST /v1/instances``: PENDING or SCHEDULED; the host's agent builds it."""
        return self._send("POST", "/instances", _INSTANCE, body)

    def create_instances(self, body: InstanceCreate) -> list[Instance]:
        """``POST /v1/instances`` with any ``count``: every instance created."""
        response = self._request("POST", "/instances", body=body)
        data = response.json()
        if isinstance(data, dict) and "items" in data:
            return _parse(response, _INSTANCE_BATCH).items
        return [_parse(response, _INSTANCE)]

    def instance_placement(self, instance_id: str) -> InstancePlacement:
        """``GET /v1/instances/{id}/placement``: the scheduler's last explanation."""
        return self._get(f"/instances/{_seg(instance_id)}/placement", _PLACEMENT)

    def schedule(self, body: ScheduleRequest) -> ScheduleResult:
        """``POST /v1/schedule``: a dry run (nothing is created)."""
        return self._send("POST", "/schedule", _SCHEDULE_RESULT, body)

    def list_server_groups(self, *, project: str | None = None) -> list[ServerGroup]:
        """``GET /v1/server-groups``."""
        return self._get("/server-groups", _SERVER_GROUPS, project=project)

    def get_server_group(self, group_id: str) -> ServerGroup:
        """``GET /v1/server-groups/{id}``."""
        return self._get(f"/server-groups/{_seg(group_id)}", _SERVER_GROUP)

    def create_server_group(self, body: ServerGroupCreate) -> ServerGroup:
        """``POST /v1/server-groups``."""
        return self._send("POST", "/server-groups", _SERVER_GROUP, body)

    def delete_server_group(self, group_id: str) -> None:
        """``DELETE /v1/server-groups/{id}`` (refused while it has live members)."""
        self._request("DELETE", f"/server-groups/{_seg(group_id)}")

    def start_instance(self, instance_id: str) -> Instance:
        """``POST /v1/instances/{id}/start``."""
        return self._send("POST", f"/instances/{_seg(instance_id)}/start", _INSTANCE)

    def stop_instance(self, instance_id: str) -> Instance:
        """``POST /v1/instances/{id}/stop``."""
        return self._send("POST", f"/instances/{_seg(instance_id)}/stop", _INSTANCE)

    def reboot_instance(self, instance_id: str) -> Instance:
        """``POST /v1/instances/{id}/reboot``."""
        return self._send("POST", f"/instances/{_seg(instance_id)}/reboot", _INSTANCE)

    def resize_instance(self, instance_id: str, flavor: str) -> Instance:
        """``POST /v1/instances/{id}/resize``: a STOPPED instance takes ``flavor``'s sizes."""
        body = InstanceResize(flavor=flavor)
        return self._send("POST", f"/instances/{_seg(instance_id)}/resize", _INSTANCE, body)

    def delete_instance(self, instance_id: str) -> Instance:
        """``DELETE /v1/instances/{id}``: DELETING until the agent removed it, then DELETED."""
        return self._send("DELETE", f"/instances/{_seg(instance_id)}", _INSTANCE)

    def instance_actions(self, instance_id: str) -> list[InstanceAction]:
        """``GET /v1/instances/{id}/actions``: the action history, oldest first."""
        return self._get(f"/instances/{_seg(instance_id)}/actions", _ACTIONS)

    # -- quotas ----------------------------------------------------------------------------

    def get_quota(self, org: str) -> QuotaReport:
        """``GET /v1/quotas/{org}``: limits, usage, headroom and % of ``org`` and its children."""
        return self._get(f"/quotas/{_seg(org)}", _QUOTA_REPORT)

    def set_quota(self, org: str, body: QuotaSet, *, dry_run: bool = False) -> list[QuotaChange]:
        """``PATCH /v1/quotas/{org}``: change some limits (``None``: unlimited); the diff."""
        params = {"dry_run": "true"} if dry_run else None
        response = self._request("PATCH", f"/quotas/{_seg(org)}", body=body, params=params)
        return _parse(response, _QUOTA_CHANGES)

    def apply_quota_policy(self, body: QuotaApply) -> list[QuotaChange]:
        """``POST /v1/quotas/apply``: a policy file's text; the changes (made or, dry, planned)."""
        return self._send("POST", "/quotas/apply", _QUOTA_CHANGES, body)

    def verify_quotas(self, body: QuotaVerify) -> list[QuotaDrift]:
        """``POST /v1/quotas/verify``: nodes whose stored usage differs from live instances."""
        return self._send("POST", "/quotas/verify", _QUOTA_DRIFTS, body)

    def quota_events(self, org: str, *, limit: int | None = None) -> list[QuotaEvent]:
        """``GET /v1/quotas/{org}/events``: soft-threshold crossings, newest first."""
        return self._get(f"/quotas/{_seg(org)}/events", _QUOTA_EVENTS, limit=limit)

    # -- usage -----------------------------------------------------------------------------

    def usage_report(self, month: str, org: str | None = None) -> UsageReport:
        """``GET /v1/usage``: usage per project in ``org``'s subtree (default: the caller's
        scope) in ``month`` (``YYYY-MM``, UTC), with per-ministry totals."""
        return self._get("/usage", _USAGE_REPORT, month=month, org=org)

    # -- SLA and maintenance windows -------------------------------------------------------

    def sla_report(
        self, month: str, *, ministry: str | None = None, everything: bool = False
    ) -> SlaReport:
        """``GET /v1/sla/report``: one ministry's SLA in ``month`` (default: the caller's
        own, or every ministry for root-scoped callers); ``everything`` asks for all."""
        return self._get(
            "/sla/report", _SLA_REPORT, month=month, ministry=ministry,
            all="true" if everything else None,
        )  # fmt: skip

    def list_maintenance_windows(
        self, *, month: str | None = None, datacentre: str | None = None
    ) -> list[MaintenanceWindow]:
        """``GET /v1/maintenance-windows``: the windows that affect the caller."""
        return self._get("/maintenance-windows", _WINDOWS, month=month, datacentre=datacentre)

    def get_maintenance_window(self, window_id: str) -> MaintenanceWindow:
        """``GET /v1/maintenance-windows/{id}``."""
        return self._get(f"/maintenance-windows/{_seg(window_id)}", _WINDOW)

    def create_maintenance_window(self, body: MaintenanceWindowCreate) -> MaintenanceWindow:
        """``POST /v1/maintenance-windows``: announce a window (platform admins)."""
        return self._send("POST", "/maintenance-windows", _WINDOW, body)

    def delete_maintenance_window(self, window_id: str) -> None:
        """``DELETE /v1/maintenance-windows/{id}``: withdraw a window."""
        self._request("DELETE", f"/maintenance-windows/{_seg(window_id)}")

    # -- Cloud Open Lab --------------------------------------------------------------------

    def lab_templates(self) -> list[TemplateView]:
        """``GET /v1/lab/templates``."""
        return self._get("/lab/templates", _TEMPLATES)

    def lab_template(self, name: str) -> TemplateView:
        """``GET /v1/lab/templates/{name}``."""
        return self._get(f"/lab/templates/{_seg(name)}", _TEMPLATE)

    def lab_vendors(self) -> list[Vendor]:
        """``GET /v1/lab/vendors``."""
        return self._get("/lab/vendors", _VENDORS)

    def create_lab_vendor(self, body: VendorCreate) -> Vendor:
        """``POST /v1/lab/vendors``: enrol a vendor (its org node under ``openlab``)."""
        return self._send("POST", "/lab/vendors", _VENDOR, body)

    def create_trial(self, body: TrialCreate) -> Trial:
        """``POST /v1/lab/trials``: a trial request (waits for a lab operator)."""
        return self._send("POST", "/lab/trials", _TRIAL, body)

    def list_trials(
        self,
        *,
        state: TrialState | None = None,
        stage: Stage | None = None,
        vendor: str | None = None,
        ministry: str | None = None,
    ) -> list[Trial]:
        """``GET /v1/lab/trials``: the trials the caller may see."""
        return self._get(
            "/lab/trials",
            _TRIALS,
            state=state.value if state else None,
            stage=stage.value if stage else None,
            vendor=vendor,
            ministry=ministry,
        )

    def get_trial(self, trial_id: str) -> TrialDetail:
        """``GET /v1/lab/trials/{id}``: the trial with history, evidence and servers."""
        return self._get(f"/lab/trials/{_seg(trial_id)}", _TRIAL_DETAIL)

    def trial_events(self, trial_id: str) -> list[TrialEvent]:
        """``GET /v1/lab/trials/{id}/events``."""
        return self._get(f"/lab/trials/{_seg(trial_id)}/events", _TRIAL_EVENTS)

    def trial_action(self, trial_id: str, action: str, body: Decision | Cancel) -> Trial:
        """``POST /v1/lab/trials/{id}/approve|reject|cancel``."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/{_seg(action)}", _TRIAL, body)

    def request_extension(self, trial_id: str, body: ExtensionCreate) -> Extension:
        """``POST /v1/lab/trials/{id}/extensions``: more time, pending approval."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/extensions", _EXTENSION, body)

    def decide_extension(self, trial_id: str, approve: bool, body: Decision) -> ExtensionDecided:
        """``POST /v1/lab/trials/{id}/extensions/approve|reject``."""
        verb = "approve" if approve else "reject"
        path = f"/lab/trials/{_seg(trial_id)}/extensions/{verb}"
        return self._send("POST", path, _EXTENSION_DECIDED, body)

    def add_evidence(self, trial_id: str, body: EvidenceCreate) -> Evidence:
        """``POST /v1/lab/trials/{id}/evidence``: attach to the current stage."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/evidence", _EVIDENCE, body)

    def list_evidence(self, trial_id: str) -> list[Evidence]:
        """``GET /v1/lab/trials/{id}/evidence``."""
        return self._get(f"/lab/trials/{_seg(trial_id)}/evidence", _EVIDENCE_LIST)

    def signoff(self, trial_id: str, body: SignoffCreate) -> SignoffResult:
        """``POST /v1/lab/trials/{id}/signoff``: the current stage is complete."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/signoff", _SIGNOFF_RESULT, body)

    def lab_catalog(self, vendor: str | None = None) -> list[CatalogEntry]:
        """``GET /v1/lab/catalog``: certified offerings."""
        return self._get("/lab/catalog", _CATALOG, vendor=vendor)

    def lab_catalog_entry(self, trial_id: str) -> CatalogEntry:
        """``GET /v1/lab/catalog/{id}``."""
        return self._get(f"/lab/catalog/{_seg(trial_id)}", _CATALOG_ENTRY)

    # -- lab: scenario runs, sizing input, promotion ---------------------------------------

    def start_lab_run(self, trial_id: str, scenario: Scenario) -> LabRun:
        """``POST /v1/lab/trials/{id}/runs``: start a scenario run."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/runs", _LAB_RUN, scenario)

    def lab_runs(self, trial_id: str) -> list[LabRun]:
        """``GET /v1/lab/trials/{id}/runs``: a trial's runs, newest first."""
        return self._get(f"/lab/trials/{_seg(trial_id)}/runs", _LAB_RUNS)

    def lab_run(self, run_id: str) -> LabRun:
        """``GET /v1/lab/runs/{id}``: progress and per-group statistics."""
        return self._get(f"/lab/runs/{_seg(run_id)}", _LAB_RUN)

    def lab_run_series(self, run_id: str, group: str | None = None) -> list[SeriesPoint]:
        """``GET /v1/lab/runs/{id}/series``: every sample."""
        return self._get(f"/lab/runs/{_seg(run_id)}/series", _LAB_SERIES, group=group)

    def cancel_lab_run(self, run_id: str, body: RunCancel) -> LabRun:
        """``POST /v1/lab/runs/{id}/cancel``: remove everything the run created."""
        return self._send("POST", f"/lab/runs/{_seg(run_id)}/cancel", _LAB_RUN, body)

    def lab_measurements(self, trial_id: str) -> Measurements:
        """``GET /v1/lab/trials/{id}/measurements``: the latest completed run, for sizing."""
        return self._get(f"/lab/trials/{_seg(trial_id)}/measurements", _MEASUREMENTS)

    def promote_trial(self, trial_id: str, body: Promote) -> Promoted:
        """``POST /v1/lab/trials/{id}/promote``: move its servers into a project."""
        return self._send("POST", f"/lab/trials/{_seg(trial_id)}/promote", _PROMOTED, body)

    # -- audit -----------------------------------------------------------------------------

    def list_audit(
        self,
        *,
        limit: int | None = None,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
    ) -> list[AuditEvent]:
        """``GET /v1/audit``: newest first; page with ``before=<smallest id seen>``."""
        return self._get(
            "/audit",
            _AUDIT,
            limit=limit,
            before=before,
            actor=actor,
            action=action,
            request_id=request_id,
        )

    # -- plumbing --------------------------------------------------------------------------

    def _get(self, path: str, adapter: TypeAdapter[M], **params: object) -> M:
        query = {k: str(v) for k, v in params.items() if v is not None}
        return _parse(self._request("GET", path, params=query), adapter)

    def _send(
        self, method: str, path: str, adapter: TypeAdapter[M], body: BaseModel | None = None
    ) -> M:
        return _parse(self._request(method, path, body=body), adapter)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        content = None
        if body is not None:
            content = body.model_dump_json(exclude_unset=True).encode()
            headers["Content-Type"] = "application/json"
        url = f"{self.base_url}{API_PREFIX}{path}"
        try:
            response = self._http.request(
                method, url, content=content, params=params, headers=headers
            )
        except httpx.TimeoutException as err:
            raise ApiUnreachable(self.base_url, f"no answer in time ({err!r})") from err
        except httpx.TransportError as err:
            raise ApiUnreachable(self.base_url, str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            raise _error_from(response)
        return response


def _seg(value: str) -> str:
    """One URL path segment, percent-encoded so no value can change the path."""
    return quote(value, safe="") or "-"


def _parse(response: httpx.Response, adapter: TypeAdapter[M]) -> M:
    """Validate the body with ``adapter``; a mismatch is reported as an API error."""
    try:
        parsed = adapter.validate_json(response.content)
    except ValidationError as err:
        raise ApiError(
            response.status_code,
            "client.unexpected_response",
            f"the API answered with something this client does not understand: {err}",
            {},
            response.headers.get(REQUEST_ID_HEADER, ""),
        ) from err
    return parsed


def wait_for_instance(
    client: GovcloudClient,
    instance_id: str,
    done: Callable[[Instance], bool],
    *,
    awaited: str,
    timeout_s: float,
    interval_s: float = 0.5,
    on_update: Callable[[Instance], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Instance:
    """Poll until ``done(instance)``; call ``on_update`` with every observation.

    Raises :class:`WaitTimeout` (with the last observation) after ``timeout_s``.
    """
    deadline = clock() + timeout_s
    while True:
        current = client.get_instance(instance_id)
        if on_update is not None:
            on_update(current)
        if done(current):
            return current
        if clock() >= deadline:
            raise WaitTimeout(current, timeout_s, awaited)
        sleep(interval_s)
