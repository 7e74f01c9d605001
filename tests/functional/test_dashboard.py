"""The built-in dashboard over HTTP: sign-in by form and cookie, scoping, escaping.

(The headless-browser test in tests/e2e/test_dashboard_browser.py loads the same page in a
real Chromium.)"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest

from tests.api_helper import ADMIN_TOKEN, Api

pytestmark = pytest.mark.usefixtures("backend")


def _sign_in(api: Api, token: str) -> None:
    response = api.client.post("/dashboard/session", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/dashboard" in cookie


def test_without_a_cookie_the_page_is_the_sign_in_form(api: Api) -> None:
    page = api.client.get("/dashboard")
    assert page.status_code == 200
    assert 'action="/dashboard/session"' in page.text
    assert "Capacity" not in page.text


def test_a_wrong_token_is_refused_with_the_reason(api: Api) -> None:
    page = api.client.post("/dashboard/session", data={"token": "not-a-token-at-all"})
    assert page.status_code == 401
    assert 'role="alert"' in page.text
    assert "govcloud_dashboard" not in page.headers.get("set-cookie", "")
    assert api.client.get("/dashboard").status_code == 200  # still the form, no cookie


def test_an_operator_sees_capacity_hosts_and_pending_requests(api: Api) -> None:
    api.register_host("tpe1-h01", vcpus=4, ram_mib=4096 + 512, disk_gib=100)
    placed = api.create_instance("web-1", flavor="m1.medium")
    assert placed["state"] == "SCHEDULED"
    waiting = api.create_instance("big-1", flavor="m1.large")
    assert waiting["state"] == "PENDING"
    _sign_in(api, ADMIN_TOKEN)

    page = api.client.get("/dashboard")

    assert page.status_code == 200
    text = page.text
    assert "tpe-1" in text
    assert "4096 of 4096" in text  # the RAM of the medium instance fills the host
    assert "All hosts are active." in text
    assert "Pending requests (1)" in text
    assert "big-1" in text
    assert waiting["pending_reason"].split(":")[0] in text
    assert "<script" not in text
    assert "http://" not in text
    assert "https://" not in text


def test_a_ministry_user_sees_only_their_pending_requests_and_no_fleet(api: Api) -> None:
    api.register_host("tpe1-h01", vcpus=1, ram_mib=1024 + 512, disk_gib=100)
    api.create_instance("moi-big", flavor="m1.large")
    api.create_instance("motc-big", project="traffic", flavor="m1.large")
    token = api.create_user("alice", "member", "disaster")
    _sign_in(api, token)

    text = api.client.get("/dashboard").text

    assert "moi-big" in text
    assert "motc-big" not in text
    assert 'id="capacity"' not in text
    assert 'id="hosts"' not in text


def test_a_host_that_is_not_active_is_listed(api: Api) -> None:
    agent = api.register_host("tpe1-h02")
    api.patch(f"/v1/hosts/{agent.host_id}", json={"state": "maintenance"}, expect=200)
    _sign_in(api, ADMIN_TOKEN)

    text = api.client.get("/dashboard").text

    assert "tpe1-h02" in text
    assert "maintenance" in text


def test_sign_out_forgets_the_cookie(api: Api) -> None:
    _sign_in(api, ADMIN_TOKEN)
    response = api.client.post("/dashboard/logout", follow_redirects=False)
    assert response.status_code == 303
    assert 'govcloud_dashboard=""' in response.headers["set-cookie"]


# -- SLA attainment, incidents and hosts down (issue 6) ------------------------------------------


def _section(html: str, section_id: str) -> str:
    """The HTML of ``<section id=section_id>`` ('' when the page has none)."""
    start = html.find(f'<section id="{section_id}">')
    return "" if start < 0 else html[start : html.index("</section>", start)]


def _row(html: str, marker: str) -> str:
    """The table row holding ``marker`` (e.g. ``data-ministry="moi"``)."""
    start = html.index(marker)
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def _host_failure(api: Api) -> dict[str, Any]:
    """moi's dr-web and dr-db run on tpe1-h01, motc's tis-api on khh1-h01 (another data
    centre). tpe1-h01 then stops reporting: the liveness loop marks it DOWN and both moi
    servers UNKNOWN, and 30 minutes pass (still down: the incident is ongoing)."""
    tpe = api.register_host("tpe1-h01")
    web = api.create_instance("dr-web")
    db = api.create_instance("dr-db")
    tpe.converge()
    api.create_dc("khh-1", "Kaohsiung 1")
    khh = api.register_host("khh1-h01", dc="khh-1")
    tis = api.create_instance("tis-api", project="traffic", datacentre="khh-1")
    khh.converge()
    assert {api.instance(i["id"])["state"] for i in (web, db, tis)} == {"RUNNING"}

    api.clock.advance(timedelta(seconds=13))
    khh.heartbeat(16, 32768, 500)
    api.app.state.liveness.run_once()
    assert {h["name"]: h["state"] for h in api.hosts()} == {
        "tpe1-h01": "down",
        "khh1-h01": "active",
    }
    assert {api.instance(i["id"])["state"] for i in (web, db)} == {"UNKNOWN"}
    api.clock.advance(timedelta(minutes=30))
    khh.heartbeat(16, 32768, 500)
    return {"tpe": tpe, "khh": khh, "web": web, "db": db, "tis": tis}


def test_an_operator_sees_sla_breach_ongoing_incident_and_the_down_host(api: Api) -> None:
    _host_failure(api)
    _sign_in(api, ADMIN_TOKEN)

    page = api.client.get("/dashboard")

    assert page.status_code == 200
    sla = _section(page.text, "sla")
    assert "SLA attainment per ministry, 2026-03 (month to date)" in sla
    moi = _row(sla, 'data-ministry="moi"')
    assert 'class="breach"' in moi
    assert "BREACHED" in moi
    assert "gold" in moi
    assert "99.95 %" in moi
    # Up 13 s, then down 30 min (both servers): 0.7 %, the budget long overspent.
    assert re.search(r"<td>0\.7\d{3} % / 99\.95 %", moi), moi
    assert "overspent: 60.0 min down, 0.03 allowed" in moi
    assert re.search(r"moi: availability 0\.7\d{3} % is below the gold target of 99\.95 %", sla)
    motc = _row(sla, 'data-ministry="motc"')
    assert 'class="breach"' not in motc
    assert "100.0000 % / 99.9 %" in motc
    assert "0.03 of 0.03 min (100.0 %)" in motc
    assert ">met<" in motc
    assert "silver" in motc

    incidents = _section(page.text, "incidents")
    assert "(1)" in incidents
    assert "tpe1-h01" in incidents
    assert "tpe-1" in incidents
    assert "ongoing" in incidents
    assert "2: dr-db, dr-web" in incidents
    assert "ongoing, 30 min 0 s so far" in incidents
    assert "tis-api" not in incidents

    hosts = _section(page.text, "hosts")
    down = _row(hosts, 'data-host="tpe1-h01"')
    assert ">down<" in down.replace(" <span", "<span")
    assert "30 min 13 s ago" in down
    assert "khh1-h01" not in hosts  # it kept reporting


def test_after_recovery_the_incident_shows_its_end_and_time_to_recover(api: Api) -> None:
    world = _host_failure(api)
    world["tpe"].heartbeat(16, 32768, 500)
    world["tpe"].converge()
    assert api.instance(world["web"]["id"])["state"] == "RUNNING"
    api.clock.advance(timedelta(minutes=5))
    _sign_in(api, ADMIN_TOKEN)

    text = api.client.get("/dashboard").text

    incidents = _section(text, "incidents")
    assert "ongoing" not in incidents
    assert "2026-03-01 09:30:13" in incidents  # the end: the agent reported them running
    assert ">30 min 0 s<" in incidents.replace("\n", "")
    assert "All hosts are active." in _section(text, "hosts")
    assert "BREACHED" in _row(_section(text, "sla"), 'data-ministry="moi"')


def test_the_month_selector_shows_another_month(api: Api) -> None:
    _host_failure(api)
    _sign_in(api, ADMIN_TOKEN)

    text = api.client.get("/dashboard", params={"month": "2026-02"}).text

    sla = _section(text, "sla")
    assert "SLA attainment per ministry, 2026-02<" in sla  # complete month: no "to date"
    assert 'value="2026-02"' in sla
    assert 'href="/dashboard?month=2026-01"' in sla
    assert 'href="/dashboard?month=2026-03"' in sla
    assert "BREACHED" not in sla
    assert "no data" in _row(sla, 'data-ministry="moi"')
    assert "No host failure affected servers this month." in _section(text, "incidents")


@pytest.mark.parametrize(
    ("month", "says"),
    [
        ("2026-13", "month 01-12"),
        ("March", "month must be YYYY-MM, e.g. 2026-11; got 'March'"),
        (
            "<script>alert(1)</script>",
            "got '<script>alert(1)'... (25 characters)",
        ),
        ("2026-03" + "x" * 5000, "(5007 characters)"),
    ],
)
def test_a_bad_month_is_said_on_the_page_not_a_500(api: Api, month: str, says: str) -> None:
    _sign_in(api, ADMIN_TOKEN)

    page = api.client.get("/dashboard", params={"month": month})

    assert page.status_code == 400
    sla = _section(page.text, "sla")
    assert 'role="alert"' in sla
    assert says in html.unescape(sla)
    assert "<script" not in page.text
    assert 'id="pending"' in page.text  # the rest of the page is still there
    assert 'id="incidents"' not in page.text


@pytest.mark.parametrize(
    ("month", "heading"), [("1970-01", "1970-01<"), ("9998-12", "9998-12 (not started yet)<")]
)
def test_the_first_and_last_supported_months_render(api: Api, month: str, heading: str) -> None:
    _sign_in(api, ADMIN_TOKEN)

    page = api.client.get("/dashboard", params={"month": month})

    assert page.status_code == 200
    assert f"SLA attainment per ministry, {heading}" in page.text
    assert "<a href" in page.text


def test_a_root_auditor_reads_every_ministry_and_the_fleet(api: Api) -> None:
    _host_failure(api)
    token = api.create_user("audrey", "auditor", "gov")
    _sign_in(api, token)

    page = api.client.get("/dashboard")

    assert page.status_code == 200
    assert "audrey (auditor, gov)" in page.text
    sla = _section(page.text, "sla")
    assert 'data-ministry="moi"' in sla
    assert 'data-ministry="motc"' in sla
    assert "tpe1-h01" in _section(page.text, "incidents")
    assert "30 min 13 s ago" in _section(page.text, "hosts")
    assert 'id="capacity"' in page.text
    assert "<form" in page.text  # only sign-out and the month selector: nothing to change
    assert page.text.count('method="post"') == 1


def test_ministry_staff_see_only_their_ministry(api: Api) -> None:
    _host_failure(api)
    moi_auditor = api.create_user("moi-auditor", "auditor", "moi")
    motc_admin = api.create_user("motc-admin", "ministry-admin", "motc")

    _sign_in(api, moi_auditor)
    text = api.client.get("/dashboard").text
    sla = _section(text, "sla")
    assert "BREACHED" in _row(sla, 'data-ministry="moi"')
    assert 'data-ministry="motc"' not in sla
    assert "dr-web" in _section(text, "incidents")
    assert 'id="hosts"' not in text  # hosts are the operators'

    _sign_in(api, motc_admin)
    text = api.client.get("/dashboard").text
    sla = _section(text, "sla")
    assert ">met<" in _row(sla, 'data-ministry="motc"')
    assert 'data-ministry="moi"' not in sla
    incidents = _section(text, "incidents")
    assert "(0)" in incidents
    assert "tpe1-h01" not in incidents
    assert "dr-web" not in text


@pytest.mark.parametrize(
    ("role", "org", "says"),
    [
        ("member", "disaster", "SLA figures are shown to ministry admins, auditors and"),
        ("member", "moi", "SLA figures are shown to ministry admins, auditors and"),
        ("auditor", "nfa", "SLA is reported per ministry; 'someone' is scoped to 'gov/moi/nfa'"),
    ],
)
def test_users_without_sla_access_get_a_note(api: Api, role: str, org: str, says: str) -> None:
    _host_failure(api)
    _sign_in(api, api.create_user("someone", role, org))

    page = api.client.get("/dashboard")

    assert page.status_code == 200
    sla = _section(page.text, "sla")
    assert says in html.unescape(sla)
    assert "data-ministry" not in sla
    assert 'id="incidents"' not in page.text
    assert "tpe1-h01" not in page.text
