"""The agent's pure per-instance decisions and status mapping (no libvirt needed)."""

from __future__ import annotations

import pytest

from agents.agent import Action, clean_message, observed_status, plan_instance
from agents.drivers.base import DomainInfo, InstanceMetadata, PowerState
from agents.protocol.v1 import ActualState, Assignment, DesiredState, ImageSpec

IID = "0b7e2f8e-6a43-4f5e-9c1d-3e8f00c0ffee"
IMAGE = ImageSpec(name="tiny", format="kernel", kernel_path="/img/vmlinuz")


def make(desired: DesiredState, *, reboot_seq: int = 0, create: bool = True) -> Assignment:
    return Assignment(
        instance_id=IID,
        name="web-1",
        vcpus=1,
        ram_mib=256,
        disk_gib=1,
        image=IMAGE,
        desired=desired,
        reboot_seq=reboot_seq,
        create=create,
    )


def dom(state: PowerState, reboot_seq: int = 0) -> DomainInfo:
    return DomainInfo(IID, f"gc-{IID}", state, InstanceMetadata(IID, "web-1", reboot_seq))


def actions(a: Assignment, d: DomainInfo | None) -> list[Action]:
    return [step.action for step in plan_instance(a, d)]


R, S, D = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.DELETED


@pytest.mark.parametrize(
    ("assignment", "domain", "expected"),
    [
        # absent
        (make(R), None, [Action.DEFINE_START]),
        (make(S), None, [Action.DEFINE]),
        (make(R, create=False), None, []),  # vanished: never recreated
        (make(S, create=False), None, []),
        (make(D), None, []),
        # present, converged: untouched (adoption after a restart)
        (make(R), dom(PowerState.RUNNING), []),
        (make(R, create=False), dom(PowerState.RUNNING), []),
        (make(S), dom(PowerState.STOPPED), []),
        (make(R, reboot_seq=3), dom(PowerState.RUNNING, 3), []),
        (make(R, reboot_seq=2), dom(PowerState.RUNNING, 3), []),  # older request: done
        # power
        (make(R), dom(PowerState.STOPPED), [Action.START]),
        (make(R), dom(PowerState.PAUSED), [Action.START]),
        (make(R), dom(PowerState.CRASHED), [Action.START]),
        (make(S), dom(PowerState.RUNNING), [Action.STOP]),
        (make(S), dom(PowerState.PAUSED), [Action.STOP]),
        (make(S), dom(PowerState.CRASHED), []),
        # reboot
        (make(R, reboot_seq=1), dom(PowerState.RUNNING), [Action.REBOOT, Action.RECORD_REBOOT_SEQ]),
        (make(R, reboot_seq=1), dom(PowerState.STOPPED), [Action.START, Action.RECORD_REBOOT_SEQ]),
        (make(S, reboot_seq=1), dom(PowerState.RUNNING), [Action.STOP, Action.RECORD_REBOOT_SEQ]),
        (make(S, reboot_seq=1), dom(PowerState.STOPPED), [Action.RECORD_REBOOT_SEQ]),
        # delete
        (make(D), dom(PowerState.RUNNING), [Action.DELETE]),
        (make(D, reboot_seq=5), dom(PowerState.STOPPED), [Action.DELETE]),
    ],
)
def test_plan(assignment: Assignment, domain: DomainInfo | None, expected: list[Action]) -> None:
    assert actions(assignment, domain) == expected


@pytest.mark.parametrize(
    ("state", "actual"),
    [
        (PowerState.RUNNING, ActualState.RUNNING),
        (PowerState.PAUSED, ActualState.RUNNING),
        (PowerState.SHUTTING_DOWN, ActualState.RUNNING),
        (PowerState.STOPPED, ActualState.STOPPED),
        (PowerState.CRASHED, ActualState.STOPPED),
        (PowerState.UNKNOWN, ActualState.ERROR),
    ],
)
def test_observed_status(state: PowerState, actual: ActualState) -> None:
    status = observed_status(IID, dom(state, 6))
    assert (status.state, status.reboot_seq) == (actual, 6)
    assert bool(status.message) == (state not in (PowerState.RUNNING, PowerState.STOPPED))


def test_absent_status() -> None:
    status = observed_status(IID, None, message="gone")
    assert (status.state, status.message) == (ActualState.ABSENT, "gone")


def test_messages_fit_the_protocol() -> None:
    assert clean_message("line one\nline two\x00") == "line one line two"
    long = clean_message("x" * 500)
    assert len(long) == 200
    assert long.endswith("...")
