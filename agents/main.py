"""``govcloud-agent``: the host agent's command line and its wiring.

Owns turning :class:`~agents.config.AgentSettings` into a running agent:
:func:`build_driver` (writing the simulated host's ``host.xml`` when no ``libvirt_uri`` is
configured), :func:`build_agent` (driver + HTTP control-plane client + agent; tests pass an
``httpx.Client`` of their own) and :func:`run`, the console script::

    govcloud-agent [--config agent.yaml] [--once] [--log-level info]

``--once`` runs one reconcile pass and exits (0: the pass completed and was reported;
1: it could not be completed). Without it the agent runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx
from pydantic import ValidationError

from agents.agent import Agent, AgentConfigError, agent_version
from agents.client import ControlPlaneError, HttpControlPlane
from agents.config import AgentSettings
from agents.drivers.base import DriverError, HostDriver
from agents.drivers.domainxml import DomainXmlOptions
from agents.drivers.hostxml import write_host_xml
from agents.drivers.libvirt import LibvirtDriver
from agents.metrics import AgentMetrics, MetricsServer, TimedDriver, serve
from agents.protocol.v1 import ActualState
from agents.usage import build_reporter

log = logging.getLogger("agents")


def build_driver(settings: AgentSettings) -> LibvirtDriver:
    """The libvirt driver for ``settings`` (simulated host: generate ``host.xml`` first)."""
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    uri = settings.libvirt_uri
    if uri is None:
        uri = write_host_xml(
            settings.state_dir,
            vcpus=settings.capacity.vcpus,
            ram_mib=settings.capacity.ram_mib,
        )
    serial_dir = settings.serial_dir
    if serial_dir is not None:
        serial_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    options = DomainXmlOptions(
        domain_type=settings.effective_domain_type,
        serial_dir=serial_dir,
        arch=settings.guest_arch,
        tcg_tb_cache_mib=settings.tcg_tb_cache_mib,
    )
    return LibvirtDriver(uri, options, stop_timeout_s=settings.stop_timeout_s)


def build_agent(
    settings: AgentSettings,
    *,
    http_client: httpx.Client | None = None,
    driver: HostDriver | None = None,
) -> Agent:
    """A ready-to-start agent talking to ``settings.control_plane_url``.

    ``http_client`` replaces the default client (its own base URL is used), e.g.
    ``fastapi.testclient.TestClient(create_app(...))`` for an in-process control plane.
    """
    control_plane = HttpControlPlane(
        settings.control_plane_url,
        http_client=http_client,
        user_agent=f"govcloud-agent/{agent_version()}",
    )
    metrics = AgentMetrics()
    timed = TimedDriver(driver if driver is not None else build_driver(settings), metrics)
    metrics.watch_domains(timed)
    return Agent(settings, timed, control_plane, metrics=metrics)


def serve_metrics(agent: Agent) -> MetricsServer | None:
    """Start the agent's ``/metrics`` endpoint if ``metrics_port`` is set."""
    port = agent.settings.metrics_port
    if port is None:
        return None
    return serve(agent.metrics, agent.settings.metrics_address, port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govcloud-agent",
        description="govcloud host agent: registers the host, heartbeats, and reconciles "
        "libvirt to the control plane's assignments.",
    )
    parser.add_argument(
        "--config", type=Path, help="YAML settings file (environment GOVCLOUD_AGENT_* wins)"
    )
    parser.add_argument(
        "--once", action="store_true", help="run one reconcile pass, report it and exit"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``govcloud-agent``; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = AgentSettings.load(args.config)
    except (ValidationError, FileNotFoundError, ValueError) as err:
        log.error("invalid agent configuration: %s", err)
        return 2
    if args.log_level != "debug":  # one line per request is noise; our own lines suffice
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        agent = build_agent(settings)
    except DriverError as err:
        log.error("cannot open libvirt: %s", err.message)
        return 1
    except OSError as err:
        log.error("cannot prepare the state directory %s: %s", settings.state_dir, err)
        return 1
    try:
        server = serve_metrics(agent)
    except OSError as err:
        log.error("cannot serve metrics on port %s: %s", settings.metrics_port, err)
        return 1
    try:
        if args.once:
            return _run_once(agent)
        return _run_forever(agent)
    finally:
        if server is not None:
            server.close()
        agent.control_plane.close()
        agent.driver.close()


def _run_once(agent: Agent) -> int:
    try:
        report = agent.run_once()
    except (AgentConfigError, ControlPlaneError, DriverError) as err:
        log.error("reconcile pass failed: %s", err)
        return 1
    errors = sum(1 for s in report.instances if s.state is ActualState.ERROR)
    log.info("pass reported %d instance(s), %d in error", len(report.instances), errors)
    return 0


def _run_forever(agent: Agent) -> int:
    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        agent.request_stop()  # run_forever() returns; the join happens below

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    usage = build_reporter(agent)  # Cloud Open Lab scenario loads (agents/usage.py)
    usage.start()
    agent.run_forever()
    usage.stop()
    agent.stop(timeout_s=5.0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
