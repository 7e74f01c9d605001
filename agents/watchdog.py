"""``govcloud-fence``: the host-side fence watchdog, a small process next to the agent.

Owns fencing when the agent *process* is gone. The agent fences itself when it cannot
reach the control plane (``Agent.check_isolation``), but if the agent dies while its VMs
keep running, nothing in it is left to do so, and the control plane, seeing the host DOWN,
restarts the instances elsewhere under ``restart-elsewhere`` once the host has been silent
for the fencing lease plus a margin. This watchdog closes that gap: it reads the lease
file the agent refreshes after every acknowledged heartbeat (``agents/lease.py``) and,
once the lease is older than the ``fence_after_s`` it carries, **destroys** (powers off,
never undefines) every ``gc-*`` domain on the host, logs it loudly, and keeps doing so on
every check until the lease is fresh again (a returning agent then starts what is still
assigned to the host and deletes what moved away). A lease of 0 (nothing on the host
would be restarted elsewhere) never fences.

Timing invariant: it checks every ``fence_check_interval_s`` (at most
``WATCHDOG_MAX_LAG_S`` = 5 s, enforced by the agent settings), so it fences at most
``fence_after_s + 5 s`` (+ the destroy) after the last acknowledged heartbeat, while the
control plane waits ``fence_after_s + GOVCLOUD_EVACUATION_MARGIN_S`` after the last
heartbeat it received, and refuses a margin of 5 s or less
(``controlplane/domain/evacuation.py``).

The lease's age is measured on this process's monotonic clock from the moment it saw the
lease change (wall-clock steps do not fence a healthy host); a lease found at start-up
counts from its recorded wall-clock time. Simulated hosts (no ``libvirt_uri``) keep their
domains inside the agent process, which take them along when it dies: there the watchdog
only watches. Usage::

    govcloud-fence --config agent.yaml [--once] [--log-level info]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from agents.config import AgentSettings
from agents.drivers.base import DriverError, HostDriver, PowerState
from agents.drivers.libvirt import LibvirtDriver
from agents.lease import FenceLease, read_lease

log = logging.getLogger("agents.watchdog")

#: Builds the driver (lazily, and again after libvirt was unreachable).
DriverFactory = Callable[[], HostDriver]


@dataclass
class FenceCheck:
    """What one check saw and did."""

    lease: FenceLease | None
    #: Seconds since the lease was last refreshed (None: no lease seen yet).
    age_s: float | None
    stale: bool = False
    destroyed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class FenceWatchdog:
    """Watches one lease file and fences the host's domains when it goes stale."""

    def __init__(
        self,
        lease_path: Path,
        driver_factory: DriverFactory | None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_path = lease_path
        self._driver_factory = driver_factory
        self._driver: HostDriver | None = None
        self._wall = wall
        self._monotonic = monotonic
        self._lease: FenceLease | None = None
        self._refreshed_at: float | None = None  # monotonic
        self.fencing = False

    def _observe(self) -> FenceLease | None:
        """Read the lease; note when it changed (a missing or unreadable file changes
        nothing: the last lease keeps ageing)."""
        lease = read_lease(self.lease_path)
        now = self._monotonic()
        if lease is not None and lease != self._lease:
            if self._lease is None:  # first sight: trust its recorded time, never the future
                now -= min(max(0.0, self._wall() - lease.acked_at), 10 * 365 * 86400.0)
            self._lease, self._refreshed_at = lease, now
        return self._lease

    def check(self) -> FenceCheck:
        """One look at the lease; destroys the running ``gc-*`` domains if it is stale."""
        lease = self._observe()
        if lease is None or self._refreshed_at is None:
            return FenceCheck(lease=None, age_s=None)
        age = self._monotonic() - self._refreshed_at
        result = FenceCheck(lease=lease, age_s=age)
        if lease.fence_after_s <= 0 or age < lease.fence_after_s:
            if self.fencing:
                log.warning("fence lease %s is fresh again: fencing stops", self.lease_path)
                self.fencing = False
            return result
        result.stale = True
        if not self.fencing:
            log.error(
                "FENCING host %s: the agent has not refreshed its lease %s for %.0f s (lease "
                "%.0f s); destroying every govcloud domain, as the control plane may restart "
                "them elsewhere",
                lease.host or "?",
                self.lease_path,
                age,
                lease.fence_after_s,
            )
            self.fencing = True
        self._fence(result)
        return result

    def _fence(self, result: FenceCheck) -> None:
        driver = self._connect()
        if driver is None:
            return
        try:
            domains = driver.list_domains()
        except DriverError as err:
            log.error("fence: cannot list domains: %s; retrying at the next check", err)
            result.failed["*"] = str(err)
            self._driver = None
            return
        for domain in domains:
            if domain.state is PowerState.STOPPED:
                continue
            try:
                driver.stop(domain.instance_id, force=True)
            except DriverError as err:
                log.error("FENCE instance=%s destroy failed: %s", domain.instance_id, err)
                result.failed[domain.instance_id] = str(err)
                continue
            log.error("FENCED instance=%s: domain destroyed (still defined)", domain.instance_id)
            result.destroyed.append(domain.instance_id)

    def _connect(self) -> HostDriver | None:
        if self._driver is None and self._driver_factory is not None:
            try:
                self._driver = self._driver_factory()
            except DriverError as err:
                log.error("fence: cannot connect to libvirt: %s; retrying", err)
        return self._driver

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """Check every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.check()
            except Exception:  # never let one bad check end the watchdog
                log.exception("fence check failed")
            stop.wait(interval_s)


def build(
    settings: AgentSettings, *, monotonic: Callable[[], float] = time.monotonic
) -> FenceWatchdog:
    """The watchdog for an agent configuration (driver opened lazily)."""
    uri = settings.libvirt_uri
    if uri is None:
        log.warning(
            "simulated host %s: its domains live inside the agent process and stop with it; "
            "watching the lease %s only",
            settings.name,
            settings.fence_lease_path,
        )
        return FenceWatchdog(settings.fence_lease_path, None, monotonic=monotonic)

    def connect() -> HostDriver:
        return LibvirtDriver(uri)

    return FenceWatchdog(settings.fence_lease_path, connect, monotonic=monotonic)


def run(argv: Sequence[str] | None = None) -> int:
    """The ``govcloud-fence`` console script."""
    parser = argparse.ArgumentParser(
        prog="govcloud-fence",
        description="Destroy this host's govcloud domains when its agent stops refreshing "
        "its fence lease.",
    )
    parser.add_argument("--config", type=Path, help="the agent's YAML configuration")
    parser.add_argument("--once", action="store_true", help="check once and exit")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = AgentSettings.load(args.config)
    except Exception as err:  # any unreadable config: say so and exit 2
        print(f"govcloud-fence: invalid configuration: {err}", file=sys.stderr)
        return 2
    watchdog = build(settings)
    if args.once:
        result = watchdog.check()
        return 1 if result.stale else 0
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("watching %s every %.1f s", settings.fence_lease_path, settings.fence_check_interval_s)
    watchdog.run(settings.fence_check_interval_s, stop)
    return 0


if __name__ == "__main__":
    sys.exit(run())
