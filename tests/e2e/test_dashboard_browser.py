"""A real browser on the built-in dashboard: Debian's Chromium, headless, driven by
Playwright (never a downloaded browser), against a control plane served by uvicorn.

The page is loaded from a running control plane holding data (a host, a running-size
instance, a pending request), signed into through its form, checked for its content and
saved as a screenshot under ``tests/e2e/.artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
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


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    """A served control plane holding a small fleet and a pending request."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dash.db'}", admin_token=ADMIN_TOKEN, run_loops=False
    )
    with serve(settings) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = admin.post(path, json=body)
            assert response.status_code in (201, 202), response.text
            result: dict[str, Any] = response.json()
            return result

        post("/v1/datacentres", {"code": "tpe-1", "name": "Taipei 1"})
        post("/v1/flavors", {"name": "m1.medium", "vcpus": 2, "ram_mib": 4096, "disk_gib": 40})
        post("/v1/flavors", {"name": "m1.xlarge", "vcpus": 8, "ram_mib": 32768, "disk_gib": 80})
        post("/v1/images", {"name": "cirros", "format": "qcow2", "path": "/var/lib/c.qcow2"})
        for code, parent in (("moi", "gov"), ("nfa", "moi"), ("disaster", "nfa")):
            post("/v1/orgs", {"code": code, "name": code.upper(), "parent": parent})
        token = post("/v1/hosts/bootstrap-tokens", {"datacentre": "tpe-1"})["token"]
        post(
            "/v1/agent/register",
            {
                "bootstrap_token": token,
                "name": "tpe1-h01",
                "capacity": {"vcpus": 8, "ram_mib": 16384 + 512, "disk_gib": 500},
                "libvirt_uri": "test:///default",
                "agent_version": "test",
            },
        )
        for name, flavor in (("web-1", "m1.medium"), ("db-big", "m1.xlarge")):
            post(
                "/v1/instances",
                {"name": name, "project": "disaster", "flavor": flavor, "image": "cirros"},
            )
        admin.close()
        yield url


def test_dashboard_in_headless_chromium(live_url: str) -> None:
    _require_browser()
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
                lambda r: None if r.url.startswith(live_url) else offline.append(r.url),
            )
            page.goto(f"{live_url}/dashboard")
            page.fill("#token", ADMIN_TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#capacity")

            capacity = page.inner_text("#capacity")
            assert "tpe-1" in capacity
            assert "4096 of 16384" in capacity
            pending = page.inner_text("#pending")
            assert "Pending requests (1)" in pending
            assert "db-big" in pending
            assert "ram_mib" in pending
            assert "All hosts are active." in page.inner_text("#hosts")
            assert offline == []  # no CDN, nothing outside the control plane
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
