"""How much the agent tells the control plane: status reports carry what changed.

A real agent on a real libvirt test-driver host against the in-memory
:class:`FakeControlPlane` (fake clock). The agent reports every assigned instance on its
periodic resync, when the generation moved without the assignments changing (the control
plane wants to hear about everything, e.g. a host back from DOWN), when a heartbeat ack
says ``report_all``, and during migrations; otherwise only the instances whose observed
status differs from the last acknowledged report, and nothing at all when none does. When
the control plane answers a report with the assignments afterwards, the agent reconciles
them at once instead of long-polling for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.agent import Agent
from agents.client import ControlPlaneUnavailable, HostCredential
from agents.config import AgentSettings
from agents.drivers.behaviour import SyntheticUsage
from agents.protocol.v1 import (
    ActualState,
    AssignmentList,
    DesiredState,
    Heartbeat,
    HeartbeatAck,
    StatusReport,
)
from agents.usage import UsageReporter
from tests.component.agent_harness import (
    FakeClock,
    FakeControlPlane,
    SimulatedHost,
    agent_settings,
    assignment,
)


class TalkativeControlPlane(FakeControlPlane):
    """The fake control plane, plus what the real one adds: ``report_all`` and
    ``lab_loads`` in heartbeat acks, a create flip that moves the generation, the
    assignments afterwards in the answer to a report, and a report that fails once."""

    def __init__(self, clock: FakeClock, *, answer_reports: bool = False) -> None:
        super().__init__(clock=clock)
        self.report_all = False
        self.lab_loads: bool | None = None
        self.answer_reports = answer_reports
        self.fail_next_report = False

    def heartbeat(self, credential: HostCredential, heartbeat: Heartbeat) -> HeartbeatAck:
        ack = super().heartbeat(credential, heartbeat)
        return ack.model_copy(update={"report_all": self.report_all, "lab_loads": self.lab_loads})

    def report_status(  # type: ignore[override]
        self, credential: HostCredential, report: StatusReport
    ) -> AssignmentList | None:
        if self.fail_next_report:
            self.fail_next_report = False
            raise ControlPlaneUnavailable("status: connection reset")
        flipped = [
            s.instance_id
            for s in report.instances
            if s.state is ActualState.RUNNING and self.current(s.instance_id).create
        ]
        super().report_status(credential, report)
        if not self.answer_reports or not flipped:
            return None
        with self._cond:
            self._bump()  # as the real control plane does when "create" stops applying
            return AssignmentList(
                host_id=credential.host_id,
                generation=self.generation,
                assignments=[self.current(i) for i in sorted(self._assignments)],
            )


def settings(tmp_path: Path) -> AgentSettings:
    """A long-poll shorter than the resync, so an unanswered poll ends before one is due."""
    return agent_settings(tmp_path / "agent", poll_wait_s=5.0, resync_interval_s=30.0)


@pytest.fixture
def cp(clock: FakeClock) -> TalkativeControlPlane:
    return TalkativeControlPlane(clock)


@pytest.fixture
def agent(
    tmp_path: Path, host: SimulatedHost, cp: TalkativeControlPlane, clock: FakeClock
) -> Agent:
    made = Agent(settings(tmp_path), host.driver, cp, clock=clock)
    made.ensure_registered()
    return made


def reported(report: StatusReport) -> dict[str, ActualState]:
    return {s.instance_id: s.state for s in report.instances}


def test_a_new_instance_is_reported_once_and_the_create_flip_costs_no_report(
    agent: Agent, cp: TalkativeControlPlane
) -> None:
    web = assignment("web-1")
    cp.assign(web)
    agent.sync()
    assert [reported(r) for r in cp.reports] == [{web.instance_id: ActualState.RUNNING}]

    cp.update(web.instance_id, create=False)  # the control plane's flip moves the generation
    assert agent.sync() is not None  # a pass ran ...
    assert len(cp.reports) == 1  # ... and had nothing new to say
    assert agent.generation == cp.generation


def test_only_instances_whose_status_changed_are_reported(
    agent: Agent, cp: TalkativeControlPlane, host: SimulatedHost
) -> None:
    web, db = assignment("web-1"), assignment("db-1")
    cp.assign(web, db)
    agent.sync()
    assert reported(cp.reports[-1]) == {
        web.instance_id: ActualState.RUNNING,
        db.instance_id: ActualState.RUNNING,
    }
    cp.update(db.instance_id, desired=DesiredState.STOPPED)
    agent.sync()
    assert reported(cp.reports[-1]) == {db.instance_id: ActualState.STOPPED}
    host.driver.stop(web.instance_id, force=True)  # powered off behind the agent's back
    cache = assignment("cache-1")
    cp.assign(cache)
    agent.sync()  # restarts web (its status is as last reported), creates cache
    assert reported(cp.reports[-1]) == {cache.instance_id: ActualState.RUNNING}


def test_a_generation_bump_without_changes_asks_for_everything(
    agent: Agent, cp: TalkativeControlPlane
) -> None:
    web, db = assignment("web-1"), assignment("db-1")
    cp.assign(web, db)
    agent.sync()
    cp.update(web.instance_id, create=False)  # the flip, as the real control plane bumps it
    agent.sync()
    assert len(cp.reports) == 1
    cp.assign(cp.current(web.instance_id))  # same content, new generation (host back from DOWN)
    agent.sync()
    assert len(cp.reports) == 2
    assert set(reported(cp.reports[-1])) == {web.instance_id, db.instance_id}


def test_the_periodic_resync_reports_everything(
    agent: Agent, cp: TalkativeControlPlane, clock: FakeClock
) -> None:
    web = assignment("web-1")
    cp.assign(web)
    agent.sync()
    assert agent.sync() is None  # nothing changed, resync not due: no pass, no report
    clock.advance(agent.settings.resync_interval_s)
    assert agent.sync() is not None
    assert [reported(r) for r in cp.reports] == [{web.instance_id: ActualState.RUNNING}] * 2


def test_a_heartbeat_ack_with_report_all_gets_a_full_report_at_once(
    agent: Agent, cp: TalkativeControlPlane
) -> None:
    web, db = assignment("web-1"), assignment("db-1")
    cp.assign(web, db)
    agent.sync()
    agent.heartbeat()
    assert agent.sync() is None  # an ordinary ack changes nothing
    cp.report_all = True
    agent.heartbeat()
    assert agent.sync() is not None  # at once, without waiting for a change or a resync
    assert set(reported(cp.reports[-1])) == {web.instance_id, db.instance_id}
    assert [wait for _, wait in cp.polls][-1] == 0.0


def test_a_failed_report_is_sent_again_in_full(agent: Agent, cp: TalkativeControlPlane) -> None:
    web = assignment("web-1")
    cp.assign(web)
    agent.sync()
    db = assignment("db-1")
    cp.assign(db)
    cp.fail_next_report = True
    with pytest.raises(ControlPlaneUnavailable):
        agent.sync()
    agent.sync()
    assert reported(cp.reports[-1]) == {
        web.instance_id: ActualState.RUNNING,
        db.instance_id: ActualState.RUNNING,
    }


def test_the_answer_to_a_report_is_reconciled_without_another_long_poll(
    tmp_path: Path, host: SimulatedHost, clock: FakeClock
) -> None:
    cp = TalkativeControlPlane(clock, answer_reports=True)
    agent = Agent(settings(tmp_path), host.driver, cp, clock=clock)
    agent.ensure_registered()
    web = assignment("web-1")
    cp.assign(web)
    agent.sync()
    assert len(cp.polls) == 1
    assert agent.generation == cp.generation  # the flip's generation, learnt from the answer
    assert cp.current(web.instance_id).create is False
    assert len(cp.reports) == 1
    assert agent.sync() is None  # the next long-poll waits: nothing is owed


def test_the_usage_reporter_stays_silent_while_the_control_plane_says_no_load(
    agent: Agent, cp: TalkativeControlPlane
) -> None:
    reporter = UsageReporter(agent, SyntheticUsage())
    assert reporter.due()  # no ack yet: poll as before
    cp.lab_loads = False
    agent.heartbeat()
    assert not reporter.due()
    cp.lab_loads = True
    agent.heartbeat()
    assert reporter.due()
    cp.lab_loads = None  # an older control plane does not say: poll as before
    agent.heartbeat()
    assert reporter.due()
