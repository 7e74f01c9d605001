"""A process hosting many real host agents in threads: ``python -m benchmarks.agentpool SPEC``.

Owns the agent side of :mod:`benchmarks.scale`. One ``govcloud-agent`` process per
simulated host costs a Python interpreter each (tens of MB; see the scale report), so
the 300-host run packs several agents per process: each agent is the real one, built by
:func:`agents.main.build_agent` with its own settings, state directory, simulated libvirt
host (``test:///<state_dir>/host.xml``, private state per host) and HTTP client to the real
``govcloud-api``; its heartbeat and reconcile (long-poll) loops and its Cloud Open Lab usage
reporter (:mod:`agents.usage`, as ``govcloud-agent`` runs it) run in threads.

``SPEC`` is a JSON file: ``{"control_plane_url", "poll_wait_s", "heartbeat_interval_s",
"agents": [{"name", "bootstrap_token", "state_dir", "vcpus", "ram_mib", "disk_gib"}]}``.
The process registers the agents (8 at a time) and starts each one as soon as it is
registered, so no host sits registered but silent long enough to be marked SUSPECT while
the others register; then it prints ``ready N`` on stdout and runs until SIGTERM/SIGINT,
then stops them.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from agents.agent import Agent
from agents.config import AgentSettings
from agents.main import build_agent
from agents.usage import UsageReporter, build_reporter


def build(spec: dict[str, Any], entry: dict[str, Any]) -> Agent:
    """One agent from the pool spec and its entry."""
    settings = AgentSettings(
        control_plane_url=spec["control_plane_url"],
        bootstrap_token=entry["bootstrap_token"],
        name=entry["name"],
        capacity={
            "vcpus": entry["vcpus"],
            "ram_mib": entry["ram_mib"],
            "disk_gib": entry["disk_gib"],
        },
        state_dir=Path(entry["state_dir"]),
        serial_log=False,
        heartbeat_interval_s=spec["heartbeat_interval_s"],
        poll_wait_s=spec["poll_wait_s"],
        resync_interval_s=spec.get("resync_interval_s", 60.0),
    )
    return build_agent(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pool described by the spec file ``argv[0]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    spec: dict[str, Any] = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agents = [build(spec, entry) for entry in spec["agents"]]
    reporters: list[UsageReporter] = []

    def register_and_start(agent: Agent) -> None:
        agent.ensure_registered()
        agent.start()
        reporter = build_reporter(agent)
        reporter.start()
        reporters.append(reporter)

    with ThreadPoolExecutor(8, thread_name_prefix="register") as pool:
        list(pool.map(register_and_start, agents))
    print(f"ready {len(agents)}", flush=True)
    stop.wait()
    for reporter in reporters:
        reporter.stop()
    for agent in agents:
        agent.request_stop()
    for agent in agents:
        agent.stop(timeout_s=spec["poll_wait_s"] + 5.0)
        agent.control_plane.close()
        agent.driver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
