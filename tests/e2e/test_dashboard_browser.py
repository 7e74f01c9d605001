"""A real browser on the built-in dashboard: Debian's Chromium, headless, driven by
Playwright (never a downloaded browser), against a control plane served by uvicorn.

The page is loaded from a running control plane holding data (two hosts, running
instances, a pending request, and a host that stopped reporting so the liveness loop took
it DOWN: an SLA breach and an ongoing incident), signed into through its form, checked for
its content (capacity, hosts down, pending, SLA attainment, incidents, the month
selector) and saved as a screenshot under ``tests/e2e/.artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.settings import Settings
from tests.api_helper import ADMIN_TOKEN
from tests.e2e.liveserver import serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / ".artifacts"


def _require_browser() -> None:
    problem = None
    if shutil.which(CHROMIUM) is None:
        problem = f"{CHROMIUM} is missing (make setup-e2e installs Debian's chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed in .venv (make setup installs it)"
    if problem is None:
        return
    if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
        pytest.fail(problem)
    pytest.skip(problem)


@dataclass
class Live:
    """A served control plane and what was put in it."""

    url: str
    month: str


def _heartbeats(url: str, host_id: str, credential: str, stop: threading.Event) -> None:
    """Keep one host alive while the test runs (the other one goes silent)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {credential}"}) as agent:
        while not stop.wait(0.1):
            agent.post(
                f"/v1/agent/hosts/{host_id}/heartbeat",
                json={"capacity": {"vcpus": 8, "ram_mib": 16384 + 512, "disk_gib": 500}},
            )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """A served control plane (loops running, short liveness timeouts) holding a small
    fleet, a pending request and a host failure: moi's web-1 ran on tpe1-h01, which then
    stopped reporting and went DOWN; motc's tis-api runs on khh1-h01, which keeps
    reporting."""
    _require_browser()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dash.db'}",
        admin_token=ADMIN_TOKEN,
        run_loops=True,
        host_suspect_after_s=1.5,
        host_down_after_s=3.0,
        liveness_interval_s=0.1,
    )
    stop = threading.Event()
    with serve(settings) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

        def post(path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            response = admin.post(path, json=body, **kwargs)
            assert response.status_code in (200, 201, 202, 204), response.text
            result: dict[str, Any] = response.json() if response.content else {}
            return result

        def register(name: str, dc: str) -> dict[str, Any]:
            token = post("/v1/hosts/bootstrap-tokens", {"datacentre": dc})["token"]
            return post(
                "/v1/agent/register",
                {
                    "bootstrap_token": token,
                    "name": name,
                    "capacity": {"vcpus": 8, "ram_mib": 16384 + 512, "disk_gib": 500},
                    "libvirt_uri": "test:///default",
                    "agent_version": "test",
                },
            )

        def running(host: dict[str, Any], instance: dict[str, Any]) -> None:
            post(
                f"/v1/agent/hosts/{host['host_id']}/status",
                {"instances": [{"instance_id": instance["id"], "state": "running"}]},
                headers={"Authorization": f"Bearer {host['credential']}"},
            )

        post("/v1/datacentres", {"code": "tpe-1", "name": "Taipei 1"})
        post("/v1/datacentres", {"code": "khh-1", "name": "Kaohsiung 1"})
        post("/v1/flavors", {"name": "m1.medium", "vcpus": 2, "ram_mib": 4096, "disk_gib": 40})
        post("/v1/flavors", {"name": "m1.xlarge", "vcpus": 8, "ram_mib": 32768, "disk_gib": 80})
        post("/v1/images", {"name": "cirros", "format": "qcow2", "path": "/var/lib/c.qcow2"})
        for code, parent in (
            ("moi", "gov"),
            ("nfa", "moi"),
            ("disaster", "nfa"),
            ("motc", "gov"),
            ("thb", "motc"),
            ("traffic", "thb"),
        ):
            post("/v1/orgs", {"code": code, "name": code.upper(), "parent": parent})
        tpe = register("tpe1-h01", "tpe-1")
        khh = register("khh1-h01", "khh-1")
        keeper = threading.Thread(
            target=_heartbeats, args=(url, khh["host_id"], khh["credential"], stop), daemon=True
        )
        keeper.start()

        def server(name: str, project: str, flavor: str, dc: str) -> dict[str, Any]:
            body = {"name": name, "project": project, "flavor": flavor, "image": "cirros"}
            return post("/v1/instances", body | {"datacentre": dc})

        running(tpe, server("web-1", "disaster", "m1.medium", "tpe-1"))
        running(khh, server("tis-api", "traffic", "m1.medium", "khh-1"))
        server("db-big", "disaster", "m1.xlarge", "tpe-1")  # fits nowhere: pending

        deadline = time.monotonic() + 30  # the liveness loop notices the silent host
        while admin.get("/v1/instances", params={"state": "UNKNOWN"}).json()["items"] == []:
            assert time.monotonic() < deadline, "tpe1-h01 never went DOWN"
            time.sleep(0.1)
        month = f"{datetime.now(UTC):%Y-%m}"
        admin.close()
        try:
            yield Live(url, month)
        finally:
            stop.set()
            keeper.join(timeout=5)


def test_dashboard_in_headless_chromium(live: Live) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            offline: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(live.url) else offline.append(r.url),
            )
            page.goto(f"{live.url}/dashboard")
            page.fill("#token", ADMIN_TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#capacity")

            capacity = page.inner_text("#capacity")
            assert "tpe-1" in capacity
            assert "4096 of 16384" in capacity
            pending = page.inner_text("#pending")
            assert "Pending requests (1)" in pending
            assert "db-big" in pending
            assert "no valid host among" in pending  # the scheduler's reason
            hosts = page.inner_text("#hosts")
            assert "tpe1-h01" in hosts
            assert "down" in hosts
            assert " ago" in hosts  # the heartbeat age

            sla = page.inner_text("#sla")
            assert f"SLA attainment per ministry, {live.month} (month to date)" in sla
            assert "BREACHED" in page.inner_text("tr[data-ministry=moi]")
            assert "moi: availability" in sla
            assert "met" in page.inner_text("tr[data-ministry=motc]")
            incidents = page.inner_text("#incidents")
            assert "tpe1-h01" in incidents
            assert "ongoing" in incidents
            assert "1: web-1" in incidents
            assert "tis-api" not in incidents
            assert page.locator("script").count() == 0
            assert offline == []  # no CDN, nothing outside the control plane
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            previous = page.get_attribute("#sla a", "href")
            assert previous is not None
            page.fill("#month", previous.rsplit("=", 1)[1])
            page.click("#sla button[type=submit]")
            page.wait_for_url("**/dashboard?month=*")
            assert "BREACHED" not in page.inner_text("#sla")
            assert "no data" in page.inner_text("tr[data-ministry=moi]")
            assert "No host failure" in page.inner_text("#incidents")
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
