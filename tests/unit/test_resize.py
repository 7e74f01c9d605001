"""Resize decisions that need no I/O: the agent's plan, when the action is done, and
metering of a claim split by a resize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.agent import Action, observed_status, plan_instance
from agents.drivers.base import DomainInfo, InstanceMetadata, PowerState
from agents.protocol.v1 import Assignment, DesiredState, ImageSpec
from controlplane.domain.instance import InstanceState, action_outcome
from controlplane.domain.metering import Interval, Month, usage_by_path

IID = "0b7e2f8e-6a43-4f5e-9c1d-3e8f00c0ffee"
IMAGE = ImageSpec(name="tiny", format="kernel", kernel_path="/img/vmlinuz")
R, S, D = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.DELETED


def want(desired: DesiredState, vcpus: int = 2, ram_mib: int = 1024) -> Assignment:
    return Assignment(
        instance_id=IID,
        name="web-1",
        flavor="m1.medium",
        vcpus=vcpus,
        ram_mib=ram_mib,
        disk_gib=1,
        image=IMAGE,
        desired=desired,
        create=False,
    )


def dom(state: PowerState, vcpus: int | None = 1, ram_mib: int | None = 256) -> DomainInfo:
    return DomainInfo(
        IID, f"gc-{IID}", state, InstanceMetadata(IID, "web-1"), vcpus=vcpus, ram_mib=ram_mib
    )


@pytest.mark.parametrize(
    ("assignment", "domain", "expected"),
    [
        (want(S), dom(PowerState.STOPPED), [Action.RESIZE]),
        (want(S, vcpus=1), dom(PowerState.STOPPED), [Action.RESIZE]),  # memory only
        (want(S, ram_mib=256), dom(PowerState.STOPPED), [Action.RESIZE]),  # vCPUs only
        (want(R), dom(PowerState.STOPPED), [Action.RESIZE, Action.START]),
        (want(S, 1, 256), dom(PowerState.STOPPED), []),  # same size: converged
        (want(R), dom(PowerState.RUNNING), []),  # never while it runs
        (want(S), dom(PowerState.RUNNING), [Action.STOP]),  # resized on a later pass
        (want(S), dom(PowerState.PAUSED), [Action.STOP]),
        (want(S), dom(PowerState.CRASHED), []),  # may still be active: not touched
        (want(S), dom(PowerState.STOPPED, vcpus=None), []),  # sizes unknown
        (want(S), dom(PowerState.STOPPED, ram_mib=None), []),
        (want(D), dom(PowerState.STOPPED), [Action.DELETE]),
    ],
)
def test_plan(assignment: Assignment, domain: DomainInfo, expected: list[Action]) -> None:
    assert [step.action for step in plan_instance(assignment, domain)] == expected


def test_the_plan_says_why_it_resizes() -> None:
    [step] = plan_instance(want(S), dom(PowerState.STOPPED))
    assert step.reason == "domain has 1 vCPU, 256 MiB; flavor m1.medium has 2 vCPU, 1024 MiB"


def test_the_status_carries_the_domain_sizes() -> None:
    status = observed_status(IID, dom(PowerState.STOPPED, 2, 1024))
    assert (status.vcpus, status.ram_mib) == (2, 1024)
    absent = observed_status(IID, None)
    assert (absent.vcpus, absent.ram_mib) == (None, None)


@pytest.mark.parametrize(
    ("state", "resized", "outcome"),
    [
        (InstanceState.STOPPED, False, None),
        (InstanceState.STOPPED, True, "success"),
        (InstanceState.RUNNING, True, "success"),  # started right after; booted resized
        (InstanceState.RUNNING, False, None),
        (InstanceState.DELETING, True, None),
        (InstanceState.ERROR, False, "error"),
        (InstanceState.DELETED, False, "cancelled"),
    ],
)
def test_a_resize_is_done_when_the_agent_reports_the_new_size(
    state: InstanceState, resized: bool, outcome: str | None
) -> None:
    assert action_outcome("resize", state, 0, 0, resized=resized) == outcome


def test_a_resized_claim_is_metered_per_size_and_counted_once() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    parts = [
        Interval(IID, "gov/moi/nfa/disaster", 1, 1024, 10, t0, t0 + 10 * hour),
        Interval(IID, "gov/moi/nfa/disaster", 4, 8192, 80, t0 + 10 * hour, None),
    ]
    [used] = usage_by_path(parts, Month.parse("2026-11"), t0 + 30 * hour).values()
    assert used.instances == 1
    assert used.instance_hours == 30
    assert used.vcpu_hours == 10 * 1 + 20 * 4
    assert used.ram_gib_hours == 10 * 1 + 20 * 8
