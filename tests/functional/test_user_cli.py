"""``govcloud user rotate-token / set-role / delete`` against the real API in-process
(SQLite): output as table, JSON and YAML, the saved token after rotating one's own, and
refusals with the field, limit and value named and the exit code scripts rely on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controlplane.cli.errors import ExitCode
from tests.api_helper import Api
from tests.functional.cli_helpers import BASE_URL, CliHarness, column, rows


@pytest.fixture
def cli(sqlite_seeded_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    return CliHarness(api_factory(sqlite_seeded_url, migrate=False), tmp_path / "home")


def test_an_admin_rotates_a_users_token_shown_once(cli: CliHarness) -> None:
    old = cli.api.create_user("alice", "member", "disaster")
    result = cli.run("user", "rotate-token", "alice")
    assert "The token is shown only this once" in result.stderr
    token = next(line.split()[-1] for line in result.stdout.splitlines() if "token" in line)
    assert token.startswith("gcu_")
    assert token != old
    cli.run("whoami", token=old, code=ExitCode.AUTH)
    assert "alice" in cli.run("whoami", token=token).stdout

    issued = json.loads(cli.run("user", "rotate-token", "alice", "-o", "json").stdout)
    assert issued["user"]["name"] == "alice"
    assert issued["token"] != token
    cli.run("whoami", token=token, code=ExitCode.AUTH)


def test_rotating_ones_own_saved_token_saves_the_new_one(cli: CliHarness) -> None:
    old = cli.api.create_user("bob", "auditor", "moi")
    saved = cli.env(token=None, url=None)
    cli.run("login", "--url", BASE_URL, "--token", old, env=saved)
    result = cli.run("user", "rotate-token", "-o", "yaml", env=saved)
    issued = yaml.safe_load(result.stdout)
    assert issued["user"]["name"] == "bob"
    assert f"saved in {cli.config_path}" in result.stderr
    assert yaml.safe_load(cli.config_path.read_text())["token"] == issued["token"]
    assert json.loads(cli.run("whoami", "-o", "json", env=saved).stdout)["name"] == "bob"

    from_env = cli.run("user", "rotate-token", "bob", token=issued["token"])
    assert "set GOVCLOUD_TOKEN to the new one" in from_env.stderr


def test_set_role_and_delete_within_the_callers_scope(cli: CliHarness) -> None:
    api = cli.api
    admin = api.create_user("moi-admin", "ministry-admin", "moi")
    member = api.create_user("carol", "member", "disaster")
    api.create_user("dave", "member", "traffic")

    table = cli.run("user", "set-role", "carol", "auditor", token=admin)
    assert "auditor" in table.stdout
    assert "carol is now auditor" in table.stderr
    as_json = json.loads(cli.run("user", "set-role", "carol", "member", "-o", "json").stdout)
    assert as_json["role"] == "member"

    refused = cli.run(
        "user", "set-role", "carol", "platform-admin", token=admin, code=ExitCode.AUTH
    )
    assert "role: ministry-admin 'moi-admin' may manage only users with role member or" in (
        refused.stderr
    )
    assert "not platform-admin" in refused.stderr
    bad = cli.run("user", "set-role", "carol", "agent", code=ExitCode.USAGE)
    assert "agent" in bad.stderr
    cli.run("user", "set-role", "dave", "auditor", token=admin, code=ExitCode.NOT_FOUND)
    cli.run("user", "delete", "dave", token=admin, code=ExitCode.NOT_FOUND)

    self_delete = cli.run("user", "delete", "moi-admin", token=admin, code=ExitCode.AUTH)
    assert "may not delete their own user" in self_delete.stderr
    done = cli.run("user", "delete", "carol", token=admin)
    assert "Deleted user carol." in done.stderr
    cli.run("whoami", token=member, code=ExitCode.AUTH)
    listed = column(rows(cli.run("user", "list").stdout), 0)
    assert "carol" not in listed
    assert {"admin", "moi-admin", "dave"} <= set(listed)


def test_the_last_platform_admin_is_kept(cli: CliHarness) -> None:
    refused = cli.run("user", "set-role", "admin", "member", code=ExitCode.API_ERROR)
    assert "'admin' is the last platform-admin" in refused.stderr
    assert "make another user platform-admin first" in refused.stderr
