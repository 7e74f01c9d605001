"""The liveness rules: when a silent host becomes SUSPECT, then DOWN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controlplane.domain.host import HostState
from controlplane.domain.liveness import LivenessPolicy, assess

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
