"""Pure rules of moving instances (``domain/migration.py``) and the agent's report for an
incoming migration (``agents.agent.incoming_status``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents.agent import incoming_status
from agents.drivers.base import DomainInfo, InstanceMetadata, PowerState
from agents.protocol.v1 import ActualState
from controlplane.domain.instance import TRANSITIONS, InstanceState, can_transition
from controlplane.domain.migration import MigrationKind, batch_size, kind_for

S = InstanceState


@given(st.integers(1, 64), st.integers(0, 100), st.integers(0, 1000))
def test_a_drain_pass_never_exceeds_its_limit(limit: int, in_flight: int, waiting: int) -> None:
    n = batch_size(limit, in_flight, waiting)
    assert 0 <= n <= waiting
    assert in_flight + n <= max(limit, in_flight)
    if in_flight < limit:
        assert n == min(limit - in_flight, waiting)


def test_live_inside_a_datacentre_cold_across() -> None:
    assert kind_for("tpe-1", "tpe-1") is MigrationKind.LIVE
    assert kind_for("tpe-1", "khh-1") is MigrationKind.COLD


def test_migrating_enters_from_running_or_stopped_and_ends_placed() -> None:
    sources = {s for s, targets in TRANSITIONS.items() if S.MIGRATING in targets}
    assert sources == {S.RUNNING, S.STOPPED}
    assert TRANSITIONS[S.MIGRATING] == {S.RUNNING, S.STOPPED, S.ERROR, S.UNKNOWN}
    assert not can_transition(S.MIGRATING, S.DELETING)  # delete waits for the move


ID = "6f1c9a7e-0d52-4a3b-9a51-3f8f1f0e2c11"


def _domain(state: PowerState) -> DomainInfo:
    return DomainInfo(ID, f"gc-{ID}", state, InstanceMetadata(instance_id=ID, name="web-1"))


def test_the_target_reports_an_arriving_domain_as_building_not_running() -> None:
    assert incoming_status(ID, None).state is ActualState.ABSENT
    assert incoming_status(ID, _domain(PowerState.PAUSED)).state is ActualState.BUILDING
    assert incoming_status(ID, _domain(PowerState.RUNNING)).state is ActualState.RUNNING
