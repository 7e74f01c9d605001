"""The trial lifecycle's pure decisions: activation, warnings, expiry, extension, cleanup,
and the final usage record; Hypothesis checks that ticking is level-based."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.domain.errors import InvalidState
from controlplane.domain.lab import TrialState
from controlplane.domain.metering import Interval
from controlplane.lab import lifecycle
from controlplane.lab.lifecycle import Clock, LabPolicy, tick

T = TrialState
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POLICY = LabPolicy()
DAY = timedelta(days=1)


def _active(ttl_days: int = 14) -> Clock:
    return tick(Clock(state=T.APPROVED, ttl_hours=ttl_days * 24), NOW, POLICY).clock


def test_approved_trial_activates_and_its_ttl_starts() -> None:
    result = tick(Clock(state=T.APPROVED, ttl_hours=14 * 24), NOW, POLICY)
    assert result.activated
    assert result.clock.state is T.ACTIVE
    assert (result.clock.activated_at, result.clock.ends_at) == (NOW, NOW + 14 * DAY)
    assert result.transitions == ((T.APPROVED, T.ACTIVE),)
    assert result.warnings == ()


def test_warnings_three_days_and_one_day_before_the_end_each_once() -> None:
    clock = _active()
    assert tick(clock, NOW + 10 * DAY, POLICY).warnings == ()
    first = tick(clock, NOW + 11 * DAY, POLICY)
    assert [w.lead_hours for w in first.warnings] == [72]
    assert first.clock.state is T.EXPIRING
    assert first.transitions == ((T.ACTIVE, T.EXPIRING),)
    again = tick(first.clock, NOW + 11 * DAY + timedelta(hours=1), POLICY)
    assert again.warnings == ()
    assert again.transitions == ()
    second = tick(first.clock, NOW + 13 * DAY, POLICY)
    assert [w.lead_hours for w in second.warnings] == [24]


def test_a_late_pass_records_only_the_most_urgent_warning() -> None:
    result = tick(_active(), NOW + 13 * DAY + timedelta(hours=1), POLICY)
    assert [w.lead_hours for w in result.warnings] == [24]
    assert result.clock.warned == frozenset({72, 24})


def test_expiry_at_the_end_and_cleanup_after_the_grace_period() -> None:
    clock = _active()
    assert tick(clock, NOW + 14 * DAY - timedelta(seconds=1), POLICY).clock.state is T.EXPIRING
    ended = tick(clock, NOW + 14 * DAY, POLICY)
    assert ended.expired
    assert ended.warnings == ()  # no warning for a trial that already ended
    assert ended.clock.state is T.EXPIRED
    assert tick(ended.clock, NOW + 30 * DAY, POLICY).clock == ended.clock  # final for tick
    end = NOW + 14 * DAY
    assert not lifecycle.cleanup_due(T.EXPIRED, end, end + 7 * DAY - timedelta(seconds=1), POLICY)
    assert lifecycle.cleanup_due(T.EXPIRED, end, end + 7 * DAY, POLICY)
    assert not lifecycle.cleanup_due(T.ACTIVE, end, end + 30 * DAY, POLICY)


def test_extension_moves_the_end_and_restarts_warnings() -> None:
    warned = tick(_active(), NOW + 12 * DAY, POLICY).clock
    longer = lifecycle.extended(warned, 7 * 24, NOW + 12 * DAY, POLICY)
    assert longer.ends_at == NOW + 21 * DAY
    assert (longer.state, longer.warned) == (T.ACTIVE, frozenset())
    # an expired trial is extended from now, not from its old end
    ended = tick(_active(), NOW + 15 * DAY, POLICY).clock
    revived = lifecycle.extended(ended, 2 * 24, NOW + 15 * DAY, POLICY)
    assert revived.ends_at == NOW + 17 * DAY
    assert revived.state is T.EXPIRING
    assert lifecycle.life_after_extension(ended, 24, NOW + 15 * DAY) == 16 * DAY


def test_actions_are_checked_against_the_state() -> None:
    lifecycle.check_action("approve", T.REQUESTED, "t")
    with pytest.raises(InvalidState) as caught:
        lifecycle.check_action("approve", T.ACTIVE, "t")
    assert caught.value.code == "lab.invalid_state"
    assert caught.value.details["allowed"] == ["requested"]
    with pytest.raises(InvalidState):
        lifecycle.check_action("extend", T.CLEANED, "t")


def test_final_usage_counts_each_server_once_within_the_trial() -> None:
    start, end = NOW, NOW + 2 * DAY
    intervals = [
        Interval("a", "p", 2, 4096, 40, NOW - DAY, NOW + DAY),  # clipped to the trial
        Interval("b", "p", 1, 1024, 10, NOW, NOW + 12 * timedelta(hours=1)),
        Interval("b", "p", 4, 8192, 10, NOW + 12 * timedelta(hours=1), None),  # resized
    ]
    usage = lifecycle.final_usage(intervals, start, end)
    assert usage.instances == 2
    assert usage.instance_hours == 24 + 48
    assert usage.vcpu_hours == 2 * 24 + 1 * 12 + 4 * 36
    assert usage.ram_gib_hours == 4 * 24 + 1 * 12 + 8 * 36
    assert usage.disk_gib_hours == 40 * 24 + 10 * 48


times = st.lists(st.integers(min_value=0, max_value=40 * 24), min_size=1, max_size=12)


@given(ttl_days=st.integers(1, 30), hours=times)
def test_ticking_is_level_based(ttl_days: int, hours: list[int]) -> None:
    """Ticking at several increasing times ends in the same state (and end) as ticking
    once at the last time, never repeats a warning, and never expires before the end."""
    start = Clock(state=T.APPROVED, ttl_hours=ttl_days * 24)
    clock = tick(start, NOW, POLICY).clock
    seen: list[int] = []
    for hour in sorted(hours):
        at = NOW + timedelta(hours=hour)
        result = tick(clock, at, POLICY)
        seen += [w.lead_hours for w in result.warnings]
        assert (result.clock.state is T.EXPIRED) == (at >= NOW + ttl_days * DAY)
        clock = result.clock
    once = tick(tick(start, NOW, POLICY).clock, NOW + timedelta(hours=max(hours)), POLICY).clock
    assert (clock.state, clock.ends_at) == (once.state, once.ends_at)
    assert len(seen) == len(set(seen))
    assert set(seen) <= set(POLICY.leads)
