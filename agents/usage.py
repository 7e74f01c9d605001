"""The agent's Cloud Open Lab usage reporter.

Owns one small loop, separate from reconciliation: every ``sample_interval_s`` it asks the
control plane which of its instances are under a scenario load
(``GET /v1/lab/hosts/{id}/loads``), takes one sample per running instance from its
:class:`~agents.drivers.behaviour.UsageSource` (synthetic on the libvirt test driver,
libvirt statistics on real hosts) and posts them (``POST /v1/lab/hosts/{id}/usage``).
Control planes without the Lab answer 404: the reporter then just idles. While the last
heartbeat ack said no VM of this host is under a load (``lab_loads`` false), the loop sends
nothing at all, so an idle fleet costs the control plane no load polling; control planes
that do not say (``lab_loads`` absent) are polled as before. The clock is the agent's, so
tests drive :meth:`UsageReporter.report_once` on a fake clock.
"""

from __future__ import annotations

import logging
import threading

from agents.agent import Agent
from agents.client import ControlPlaneError, HttpControlPlane
from agents.drivers.base import HostDriver, PowerState
from agents.drivers.behaviour import UsageSource, usage_source_for
from agents.protocol.v1 import LoadList, UsageReport, UsageSample

log = logging.getLogger(__name__)
LAB_PREFIX = "/v1/lab/hosts"
#: How often an idle reporter looks at the agent's ``lab_loads`` flag (no request).
IDLE_CHECK_S = 1.0


class UsageReporter:
    """Samples the loads assigned to one agent's host and reports them."""

    def __init__(self, agent: Agent, source: UsageSource) -> None:
        self.agent = agent
        self.source = source
        self._began: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval_s = 5.0
        self.reports = 0

    def _http(self) -> HttpControlPlane:
        cp = self.agent.control_plane
        if not isinstance(cp, HttpControlPlane):
            raise ControlPlaneError("usage reports need the HTTP control plane client")
        return cp

    def report_once(self) -> UsageReport:
        """Fetch the loads, sample every running instance under one, report; return it."""
        credential = self.agent.ensure_registered()
        cp = self._http()
        response = cp._call(
            "GET", f"{LAB_PREFIX}/{credential.host_id}/loads", credential=credential, expect=(200,)
        )
        listing = cp._parse(response, LoadList)
        self.interval_s = listing.sample_interval_s
        now = self.agent.clock.monotonic()
        samples: list[UsageSample] = []
        current = {load.instance_id for load in listing.loads}
        for gone in set(self._began) - current:
            del self._began[gone]
        for load in listing.loads:
            domain = self.agent.driver.get(load.instance_id)
            if domain is None or domain.state is not PowerState.RUNNING:
                continue
            began = self._began.setdefault(load.instance_id, now)
            sample = self.source.sample(load.instance_id, load.profile, now - began, now)
            if sample is not None:
                samples.append(sample)
        report = UsageReport(samples=samples)
        if samples:
            cp._call(
                "POST",
                f"{LAB_PREFIX}/{credential.host_id}/usage",
                body=report,
                credential=credential,
                expect=(204,),
            )
        self.reports += 1
        return report

    def start(self) -> None:
        """Report in a daemon thread until :meth:`stop`."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"govcloud-agent-usage-{self.agent.settings.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the loop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def due(self) -> bool:
        """Whether to ask the control plane for loads now (not while it says none)."""
        if self.agent.lab_loads is False:
            self._began.clear()  # a load that comes back later starts its curve again
            return False
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if not self.due():
                self.agent.clock.wait(self._stopping, IDLE_CHECK_S)
                continue
            try:
                self.report_once()
            except ControlPlaneError as err:
                log.debug("usage report skipped: %s", err)
            except Exception:
                log.exception("usage report failed")
            self.agent.clock.wait(self._stopping, self.interval_s)


def build_reporter(agent: Agent, driver: HostDriver | None = None) -> UsageReporter:
    """A reporter for ``agent``; ``driver`` is the raw libvirt driver (for its connection)."""
    raw = driver if driver is not None else getattr(agent.driver, "inner", agent.driver)
    has_connection = hasattr(type(raw), "connection")
    connect = (lambda: getattr(raw, "connection")) if has_connection else None  # noqa: B009
    return UsageReporter(agent, usage_source_for(raw.uri, connect))
