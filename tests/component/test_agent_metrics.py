"""The agent's ``/metrics``: libvirt call latency by operation, domains by state, reconcile
passes and errors, heartbeat failures -- over a real libvirt test-driver host, served by
prometheus-client's HTTP server on a loopback port and scraped over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.agent import Agent
from agents.client import ControlPlaneError, HostCredential
from agents.main import build_agent, serve_metrics
from agents.metrics import AgentMetrics, TimedDriver
from agents.protocol.v1 import DesiredState, Heartbeat, HeartbeatAck, ImageSpec
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    SimulatedHost,
    agent_settings,
    assignment,
)

#: A format the protocol refuses, passed unvalidated so the driver fails on it.
VMDK: Any = "vmdk"


class FlakyControlPlane(FakeControlPlane):
    """Heartbeats fail while ``down`` is set."""

    down = False

    def heartbeat(self, credential: HostCredential, heartbeat: Heartbeat) -> HeartbeatAck:
        if self.down:
            raise ControlPlaneError("connection refused")
        return super().heartbeat(credential, heartbeat)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_agent_metrics_are_served_and_follow_the_host(tmp_path: Path, host: SimulatedHost) -> None:
    clock = FakeClock()
    cp = FlakyControlPlane(clock=clock)
    metrics = AgentMetrics()
    driver = TimedDriver(host.driver, metrics)
    metrics.watch_domains(driver)
    agent = Agent(
        agent_settings(tmp_path / "agent", metrics_port=0),
        driver,
        cp,
        clock=clock,
        metrics=metrics,
    )
    running = assignment("web-1")
    stopped = assignment("db-1", desired=DesiredState.STOPPED)
    odd = ImageSpec.model_construct(name="odd", format=VMDK, path="/i/o.vmdk")
    broken = assignment("bad-1", image=odd)
    cp.assign(running, stopped, broken)
    agent.run_once()
    cp.down = True
    with pytest.raises(ControlPlaneError):
        agent.heartbeat()

    server = serve_metrics(agent)
    assert server is not None
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    finally:
        server.close()
    assert response.status_code == 200
    s = samples(response.text)

    def v(name: str, **labels: str) -> float:
        return s[(name, frozenset(labels.items()))]

    assert v("govcloud_agent_domains", state="running") == 1
    assert v("govcloud_agent_domains", state="stopped") == 1
    assert v("govcloud_agent_domains", state="crashed") == 0
    assert v("govcloud_agent_libvirt_up") == 1
    assert v("govcloud_agent_libvirt_call_duration_seconds_count", operation="define_start") >= 1
    assert v("govcloud_agent_libvirt_call_duration_seconds_count", operation="define") >= 1
    assert v("govcloud_agent_libvirt_call_duration_seconds_count", operation="list_domains") >= 2
    assert v("govcloud_agent_libvirt_call_errors_total", operation="define_start") == 1
    assert v("govcloud_agent_reconcile_passes_total") == 1
    assert v("govcloud_agent_reconcile_errors_total", stage="instance") == 1
    assert v("govcloud_agent_heartbeats_total") == 1
    assert v("govcloud_agent_heartbeat_failures_total") == 1
    # no instance ids as labels
    ids = {running.instance_id, stopped.instance_id, broken.instance_id}
    assert not any(value in ids for _n, labels in s for _k, value in labels)


def test_build_agent_times_the_driver_and_serves_nothing_by_default(
    tmp_path: Path, host: SimulatedHost
) -> None:
    settings = agent_settings(tmp_path / "agent")
    assert settings.metrics_port is None
    agent = build_agent(settings, driver=host.driver)
    try:
        assert isinstance(agent.driver, TimedDriver)
        assert agent.driver.uri == host.uri
        assert serve_metrics(agent) is None
        agent.driver.list_domains()
        count = agent.metrics.registry.get_sample_value(
            "govcloud_agent_libvirt_call_duration_seconds_count", {"operation": "list_domains"}
        )
        assert count == 1
    finally:
        agent.control_plane.close()


def test_metrics_port_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metrics_port"):
        agent_settings(tmp_path, metrics_port=70000)
