"""A real Prometheus (Debian's package) scrapes a running control plane and evaluates
govcloud's own recording rules over its metrics; the results are read back through the
Prometheus HTTP API.

The control plane is the real app over SQLite, served by uvicorn on a loopback port, with
a fake clock so provisioning latencies are exact. Prometheus gets its own
``--config.file``, a ``--storage.tsdb.path`` in tmp and a loopback port; the shipped rule
files are used unchanged except for their evaluation interval (1 s instead of 30 s).
Results are polled with a timeout; nothing asserts on wall-clock time.

Skips with the reason when ``prometheus`` is not installed, unless
``GOVCLOUD_REQUIRE_E2E=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from tests.api_helper import Api

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
TIMEOUT_S = 90.0


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        reason = "prometheus is not installed (apt-get install --no-install-recommends prometheus)"
        if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def run_prometheus(workdir: Path, target: str) -> Iterator[str]:
    """Start Prometheus scraping ``target`` every second with govcloud's rules."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    rule_files = []
    for path in RULES:
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
        copy = workdir / path.name
        copy.write_text(yaml.safe_dump(rules))
        rule_files.append(str(copy))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": "govcloud", "static_configs": [{"targets": [target]}]},
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200 or None)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def poll(check: Any, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy (connection errors retried)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def query(prometheus: str, expr: str) -> dict[str, float]:
    """Instant query; ``{label-set: value}`` with labels rendered as ``k=v,...`` (NaN
    results, e.g. a quantile over a window without increase, are left out)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(
            r["value"][1]
        )
        for r in body["data"]["result"]
        if r["value"][1] != "NaN"
    }


@pytest.fixture
def control_plane(sqlite_seeded_template: Path, tmp_path: Path) -> Iterator[Api]:
    database = tmp_path / "govcloud.db"
    shutil.copyfile(sqlite_seeded_template, database)
    api = Api(f"sqlite:///{database}", migrate=False)
    yield api
    api.close()


def test_prometheus_scrapes_govcloud_and_evaluates_its_recording_rules(
    control_plane: Api, tmp_path: Path
) -> None:
    api = control_plane
    agent = api.register_host("tpe-1-h01", vcpus=32, ram_mib=65536)
    # moi: three instances RUNNING after exactly 20 s, one of which then fails
    made = [api.create_instance(f"web-{n}") for n in range(3)]
    api.clock.advance(timedelta(seconds=20))
    agent.converge()
    agent.status(made[0]["id"], "error", message="qemu: guest crashed")

    with (
        serve_app(api.app) as target,
        run_prometheus(tmp_path / "prometheus", target) as prometheus,
    ):
        up = poll(lambda: query(prometheus, 'up{job="govcloud"}') or None, "the scrape target")
        assert list(up.values()) == [1.0]

        # availability: 2 of the 3 moi instances that should run do
        availability = poll(
            lambda: query(prometheus, "ministry:govcloud_availability:ratio") or None,
            "ministry:govcloud_availability:ratio",
        )
        assert availability == {"ministry=moi": pytest.approx(2 / 3)}

        # all-time p95 provisioning: the three 20 s observations fall in (15, 30]
        p95 = poll(
            lambda: query(prometheus, "ministry:govcloud_provisioning_latency_seconds:p95_all"),
            "provisioning p95",
        )
        assert p95 == {"ministry=moi": pytest.approx(15 + 0.95 * 15)}

        # rate-based p95 over the last hour: provision one more moi instance in ~400 s
        # while Prometheus watches; only the (300, 600] bucket grows: p95 = 300 + 0.95 * 300
        late = api.create_instance("late-0")
        api.clock.advance(timedelta(seconds=400))
        agent.converge()
        assert api.instance(late["id"])["state"] == "RUNNING"
        p95_1h = poll(
            lambda: query(
                prometheus, 'ministry:govcloud_provisioning_latency_seconds:p95_1h{ministry="moi"}'
            ),
            "rate-based provisioning p95",
        )
        assert p95_1h == {"ministry=moi": pytest.approx(585.0)}

        # per-replica API counters reach Prometheus with route templates as labels
        routes = poll(
            lambda: query(prometheus, "sum by (route) (govcloud_api_requests_total)"),
            "API request counters",
        )
        assert "route=/metrics" in routes
        assert "route=/v1/agent/hosts/{host_id}/status" in routes
