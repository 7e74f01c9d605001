"""``--wait`` on drains and migrations (``cli/follow.py``) against the real API in-process
(SQLite): a timeout exits 6 and Ctrl-C exits 130, each saying the operation carries on in
the control plane and how to follow it again; the operation indeed carries on. (The
consolidation's ``--wait`` is covered in ``test_consolidation_cli.py``.)"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from controlplane.cli.context import CliEnv
from controlplane.cli.errors import ExitCode
from tests.api_helper import Api
from tests.functional.cli_helpers import CliHarness


@pytest.fixture
def cli(sqlite_seeded_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    """h01 runs web-01; h02 is registered but its agent never acts, so nothing that needs
    an agent finishes."""
    harness = CliHarness(api_factory(sqlite_seeded_url, migrate=False), tmp_path / "home")
    h01 = harness.api.register_host("tpe-1-h01")
    harness.api.create_instance("web-01")
    h01.converge()
    harness.api.register_host("tpe-1-h02")
    harness.on_tick.append(harness.api.app.state.drains.run_once)
    return harness


def interrupted(cli: CliHarness) -> CliEnv:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    return dataclasses.replace(cli.env(), sleep=interrupt)


def test_a_drain_that_outlasts_the_timeout_exits_6_and_carries_on(cli: CliHarness) -> None:
    result = cli.run(
        "host", "drain", "tpe-1-h01", "--wait", "--timeout", "3", code=ExitCode.TIMEOUT
    )
    assert "0/1 moved, 1 in flight" in result.stderr
    assert "drain of tpe-1-h01 still running after 3 s" in result.stderr
    assert "it carries on in the control plane" in result.stderr
    assert "govcloud host drains tpe-1-h01" in result.stderr
    running = json.loads(cli.run("host", "drains", "--running", "-o", "json").stdout)
    assert [d["subject_name"] for d in running] == ["tpe-1-h01"]


def test_ctrl_c_stops_following_a_drain_not_the_drain(cli: CliHarness) -> None:
    env = interrupted(cli)
    result = cli.run("host", "drain", "tpe-1-h01", "--wait", env=env, code=130)
    assert "Stopped following. The drain of tpe-1-h01 carries on" in result.stderr
    running = json.loads(cli.run("host", "drains", "--running", "-o", "json").stdout)
    assert [d["subject_name"] for d in running] == ["tpe-1-h01"]


def test_a_migration_that_outlasts_the_timeout_exits_6(cli: CliHarness) -> None:
    result = cli.run(
        "server", "migrate", "web-01", "--wait", "--timeout", "2", code=ExitCode.TIMEOUT
    )
    assert "  preparing  0.0s" in result.stderr
    assert "migration of web-01 still preparing after 2 s" in result.stderr
    assert "govcloud server show" in result.stderr
