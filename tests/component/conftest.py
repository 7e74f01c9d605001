"""Fixtures the agent component tests share: a simulated host on libvirt's test driver
(closed afterwards) and a fake clock. A test module that needs another host (foreign
domains, say) defines its own ``host``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.agent_harness import FakeClock, SimulatedHost, simulated_host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SimulatedHost]:
    sim = simulated_host(tmp_path / "host")
    yield sim
    sim.driver.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
