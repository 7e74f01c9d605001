"""The built-in dashboard over HTTP: sign-in by form and cookie, scoping, escaping.

(The headless-browser test in tests/e2e/test_dashboard_browser.py loads the same page in a
real Chromium.)"""

from __future__ import annotations

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
