"""(c) Agent: reconcile throughput on the libvirt test driver.

The real :class:`agents.agent.Agent` with the real :class:`LibvirtDriver` on a simulated
host (libvirt's test driver, ``test:///<dir>/host.xml``) and the in-memory stand-in for the
control plane from the agent's component tests (:class:`FakeControlPlane`, implementing
:class:`agents.client.ControlPlane`). Two figures:

* a *define+start* pass: N new assignments, one ``Agent.sync(force=True)`` defines and
  starts every domain and builds the status report (a fresh host each repetition);
* an *idle resync* pass over N running domains: nothing to do but list the domains,
  compare and report, which every agent does each ``resync_interval_s``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from agents.agent import Agent
from agents.protocol.v1 import ActualState, StatusReport
from benchmarks import Context, Result, Row
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    SimulatedHost,
    agent_settings,
    assignment,
    simulated_host,
)

NAME = "agent"


def _not_running(report: StatusReport | None) -> int:
    if report is None:
        return -1
    return sum(1 for s in report.instances if s.state is not ActualState.RUNNING)


def _row(kind: str, assignments: int, samples: list[float], errors: int) -> Row:
    median = statistics.median(samples)
    return {
        "pass": kind,
        "assignments": assignments,
        "repeats": len(samples),
        "median_s": round(median, 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
        "per_instance_ms": round(median / assignments * 1000, 3),
        "instances_per_s": round(assignments / median, 0),
        "not_running": errors,
    }


def measure_agent(
    workdir: Path, *, assignments: int, repeats: int = 3, idle_repeats: int = 5
) -> list[Row]:
    """Time define+start passes of ``assignments`` new instances (``repeats`` times, each on
    a fresh simulated host under ``workdir``) and idle resync passes over the last host's
    running domains; returns one row per kind of pass."""
    if repeats < 1 or idle_repeats < 1:
        raise ValueError("repeats and idle_repeats must be at least 1")
    define_samples: list[float] = []
    idle_samples: list[float] = []
    errors = 0
    host: SimulatedHost | None = None
    for rep in range(repeats):
        if host is not None:
            host.driver.close()
        state = workdir / f"agent-{assignments}-{rep}"
        host = simulated_host(
            state / "host", vcpus=max(8, assignments), ram_mib=max(16384, 512 * assignments)
        )
        clock = FakeClock()
        control_plane = FakeControlPlane(clock=clock)
        agent = Agent(agent_settings(state / "agent"), host.driver, control_plane, clock=clock)
        agent.ensure_registered()
        control_plane.assign(*(assignment(f"bench-{i:05d}") for i in range(assignments)))
        start = time.perf_counter()
        report = agent.sync(force=True)
        define_samples.append(time.perf_counter() - start)
        errors += _not_running(report)
    assert host is not None
    idle_errors = 0
    try:
        for _ in range(idle_repeats):
            start = time.perf_counter()
            report = agent.sync(force=True)
            idle_samples.append(time.perf_counter() - start)
            idle_errors += _not_running(report)
    finally:
        host.driver.close()
    return [
        _row("define+start", assignments, define_samples, errors),
        _row("idle resync", assignments, idle_samples, idle_errors),
    ]


def run(context: Context) -> Result:
    """N = 100 and 1,000 assignments."""
    result = Result(
        name=NAME,
        title="Agent reconcile passes (libvirt test driver)",
        description=(
            "One `Agent.sync(force=True)` pass of the real agent and libvirt driver on a "
            "simulated host (libvirt test driver) against an in-memory control plane "
            "(`FakeControlPlane`): fetch assignments, reconcile, build and send the status "
            "report. *define+start*: N new assignments on an empty host; *idle resync*: "
            "the next passes over the same N running domains (nothing to change)."
        ),
        columns=[
            "pass",
            "assignments",
            "repeats",
            "median_s",
            "min_s",
            "max_s",
            "per_instance_ms",
            "instances_per_s",
            "not_running",
        ],
    )
    for n in (100, 1000):
        repeats = 1 if context.quick else (5 if n == 100 else 3)
        rows = measure_agent(
            context.workdir, assignments=n, repeats=repeats, idle_repeats=3 if context.quick else 5
        )
        result.rows += rows
        for row in rows:
            context.progress(
                f"agent {row['pass']} N={n}: median {row['median_s']} s "
                f"({row['per_instance_ms']} ms/instance)"
            )
    result.notes.append(
        "The test driver does no real work per domain, so these figures are the agent's own "
        "overhead (XML generation, metadata, bookkeeping, libvirt API calls) - the floor "
        "under what a real qemu host adds."
    )
    return result
