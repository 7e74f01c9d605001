"""``/dashboard``: the built-in, server-rendered dashboard (no JavaScript, no external CDN).

A browser cannot send bearer tokens, so the page signs in with a form: ``POST
/dashboard/session`` checks the token exactly like the API does and keeps it in an
HttpOnly, SameSite=Strict cookie scoped to ``/dashboard``; ``POST /dashboard/logout``
drops it. The page then shows what that user may see (see ``api/dashboard.py``);
``?month=YYYY-MM`` picks the SLA month (a bad value is said on the page, with status 400).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from controlplane.api import dashboard
from controlplane.api.context import SettingsDep, StoreDep
from controlplane.api.sla_report import targets_of
from controlplane.domain.errors import GovcloudError

router = APIRouter(tags=["dashboard"], include_in_schema=False)
COOKIE = "govcloud_dashboard"
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _page(template: str, status_code: int = 200, **values: object) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status_code)


@router.get("/dashboard", name="dashboard.show")
def show(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """The dashboard for the signed-in user, or the sign-in form."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return _page("login.html")
    try:
        who = store.users.authenticate(token)
    except GovcloudError as exc:
        return _page("login.html", status_code=401, error=exc.message)
    request.state.principal = who
    view = dashboard.build(
        store,
        who,
        targets=lambda: targets_of(request, settings),
        month=request.query_params.get("month"),
    )
    return _page("dashboard.html", status_code=400 if view.sla.error else 200, view=view)


@router.post("/dashboard/session", name="dashboard.login")
async def login(request: Request, store: StoreDep) -> Response:
    """Check the token from the form and keep it in the dashboard cookie."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    try:
        who = store.users.authenticate(token)
    except GovcloudError as exc:
        return _page("login.html", status_code=401, error=exc.message)
    request.state.principal = who
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", path="/dashboard", max_age=12 * 3600
    )
    return response


@router.post("/dashboard/logout", name="dashboard.logout")
def logout() -> Response:
    """Forget the dashboard cookie."""
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response
