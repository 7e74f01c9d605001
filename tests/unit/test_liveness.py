"""The liveness rules: when a silent host becomes SUSPECT, then DOWN, and which state it
returns to; which evacuation policy applies to an instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controlplane.domain.evacuation import (
    WATCHDOG_MAX_LAG_S,
    EvacuationOverride,
    EvacuationPolicy,
    EvacuationTiming,
    applied_policy,
    ministry_of,
)
from controlplane.domain.host import LIVENESS_STATES, HostState
from controlplane.domain.liveness import LivenessPolicy, assess, remembered, returns_to

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = LivenessPolicy()  # the defaults: SUSPECT after 8 s, DOWN after 12 s


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("state", "silent_s", "expected"),
    [
        (HostState.ACTIVE, 3, None),
        (HostState.ACTIVE, 8, None),  # exactly at the cutoff: still trusted
        (HostState.ACTIVE, 8.5, HostState.SUSPECT),
        (HostState.ACTIVE, 12.5, HostState.DOWN),  # a missed sweep goes straight to DOWN
        (HostState.SUSPECT, 9, None),
        (HostState.SUSPECT, 13, HostState.DOWN),
        (HostState.DOWN, 600, None),  # already down
        (HostState.MAINTENANCE, 600, None),  # expected to be quiet
        (HostState.DISABLED, 600, None),
    ],
)
def test_assess(state: HostState, silent_s: float, expected: HostState | None) -> None:
    assert assess(state, ago(silent_s), NOW, POLICY) is expected


def test_a_host_that_never_reported_is_left_alone() -> None:
    assert assess(HostState.ACTIVE, None, NOW, POLICY) is None


def test_default_detection_is_within_fifteen_seconds() -> None:
    # Worst case: the sweep runs once a second, so DOWN is seen by down_after_s + 1.
    assert POLICY.down_after_s + 1.0 <= 15.0


def test_down_must_come_after_suspect() -> None:
    with pytest.raises(ValidationError, match="must be longer than"):
        LivenessPolicy(suspect_after_s=10, down_after_s=10)


@given(st.floats(min_value=0, max_value=3600), st.sampled_from(list(HostState)))
def test_silence_never_makes_a_host_healthier(silent_s: float, state: HostState) -> None:
    new = assess(state, ago(silent_s), NOW, POLICY)
    if new is not None:
        assert new in (HostState.SUSPECT, HostState.DOWN)
        assert state is not HostState.DOWN
        assert not (state is HostState.SUSPECT and new is HostState.SUSPECT)


# -- the administrative state a host returns to -------------------------------------------


@given(
    admin=st.sampled_from([HostState.ACTIVE, HostState.DRAINING]),
    silences=st.lists(st.floats(min_value=0, max_value=600), min_size=1, max_size=8),
)
def test_a_host_returns_to_the_state_it_was_left_in(
    admin: HostState, silences: list[float]
) -> None:
    """Whatever sweeps happen while it is silent, the next heartbeat restores ``admin``."""
    state, recorded = admin, None
    for silent_s in silences:
        new = assess(state, ago(silent_s), NOW, POLICY)
        if new is not None:
            recorded = remembered(state, recorded)
            state = new
    if state in LIVENESS_STATES:
        assert returns_to(recorded) is admin


def test_rows_without_a_recorded_state_return_active() -> None:
    assert returns_to(None) is HostState.ACTIVE
    assert returns_to(HostState.DOWN) is HostState.ACTIVE
    assert remembered(HostState.DOWN, HostState.DRAINING) is HostState.DRAINING


# -- which evacuation policy applies -------------------------------------------------------

POLICIES = st.sampled_from(list(EvacuationPolicy))


@given(dc=POLICIES, override=st.one_of(st.none(), POLICIES))
def test_a_ministry_override_wins_and_inherit_takes_the_dcs(
    dc: EvacuationPolicy, override: EvacuationPolicy | None
) -> None:
    applied = applied_policy("tpe-1", dc, "moe", override)
    assert applied.policy is (override or dc)
    assert applied.source == ("ministry" if override else "datacentre")
    assert applied.owner == ("moe" if override else "tpe-1")
    assert applied.policy.value in applied.describe()


def test_override_values_and_ministry_of_a_path() -> None:
    assert EvacuationOverride.INHERIT.policy is None
    assert EvacuationOverride("none").policy is EvacuationPolicy.NONE
    assert ministry_of("gov/moe/naer/edu-cloud") == "moe"
    assert ministry_of("gov") is None


def test_the_evacuation_margin_must_exceed_the_watchdog_lag() -> None:
    with pytest.raises(ValidationError, match="fence watchdog"):
        EvacuationTiming(margin_s=WATCHDOG_MAX_LAG_S)
    timing = EvacuationTiming()
    assert timing.evacuate_after_s - timing.fence_after_s > WATCHDOG_MAX_LAG_S
    assert timing.lease_for(EvacuationPolicy.NONE) == 0.0
    assert timing.lease_for(EvacuationPolicy.NONE, ministry_overrides=True) == 30.0
