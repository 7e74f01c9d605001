"""The fixture most CLI tests share: a seeded control plane (data centre tpe-1, the m1.*
flavors, image cirros, projects disaster and traffic) on SQLite and a CLI pointed at it
as the admin. A module that needs another world defines its own ``cli``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api_helper import Api
from tests.functional.cli_helpers import CliHarness


@pytest.fixture
def cli(sqlite_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    api = api_factory(sqlite_url)
    api.seed()
    return CliHarness(api, tmp_path / "home")
