"""``govcloud quota`` through Typer's CliRunner against the real API in-process (SQLite):
show, set (diff, --dry-run, --unlimited), apply (diff first, --dry-run, --yes, confirmation,
idempotence), bad policy files reported as FILE:LINE: field ...: message, verify (and
--repair), events, and a quota-exceeded ``server create`` with its violations and hint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from controlplane.cli import quota as quota_cli
from controlplane.cli.errors import ExitCode
from controlplane.store.tables import QuotaNodeRow
from tests.api_helper import Api
from tests.functional.cli_helpers import CliHarness, column, rows

POLICY = """\
description: limits for the transport ministry
classes:
  transport:
    limits: {instances: 100, vcpus: 64}
assignments:
  - {org: motc, class: transport}
  - {org: thb, class: agency-small, limits: {vcpus: 32}}
"""


@pytest.fixture
def cli(sqlite_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    """The standard seed, a roomy host, and a CLI pointed at it as the admin."""
    api = api_factory(sqlite_url)
    api.seed()
    api.register_host("tpe-h01", vcpus=256, ram_mib=1024 * 1024, disk_gib=100_000)
    return CliHarness(api, tmp_path / "home")


def limits_of(cli: CliHarness, org: str) -> dict[str, int]:
    body: dict[str, int] = cli.api.get(f"/v1/quotas/{org}", expect=200).json()["node"]["limits"]
    return body


def table_row(text: str, *cells: str) -> list[str]:
    """The cells of the one table row whose leading cells are ``cells``."""
    found = [
        [c.strip() for c in line.strip("│").split("│")]
        for line in rows(text)
        if [c.strip() for c in line.strip("│").split("│")][: len(cells)] == list(cells)
    ]
    assert len(found) == 1, (cells, text)
    return found[0]


def policy_file(tmp_path: Path, text: str = POLICY, name: str = "transport.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- show / set ------------------------------------------------------------------------------


def test_set_prints_the_diff_and_show_prints_limits_usage_headroom_and_percent(
    cli: CliHarness,
) -> None:
    result = cli.run("quota", "set", "motc", "--vcpus", "16", "--instances", "10")
    assert table_row(result.stdout, "motc", "instances") == [
        "motc",
        "instances",
        "unlimited",
        "10",
        "0",
        "-",
    ]
    assert table_row(result.stdout, "motc", "vcpus")[2:4] == ["unlimited", "16"]
    assert "Changed 2 field(s) of motc's quota." in result.stderr
    cli.run("quota", "set", "thb", "--vcpus", "8", "--soft-threshold", "0.5")
    for i in range(2):
        cli.api.create_instance(f"web-{i}", "traffic", "m1.large")  # 4 vCPU each

    shown = cli.run("quota", "show", "motc").stdout
    assert "Quota of ministry motc (gov/motc); soft threshold 80%" in shown
    header = ["ORG", "KIND", "DIMENSION", "USED", "LIMIT", "HEADROOM", "USED %", "FLAGS"]
    assert all(h in shown for h in header)
    assert table_row(shown, "motc", "ministry", "vcpus") == [
        "motc",
        "ministry",
        "vcpus",
        "8",
        "16",
        "8",
        "50%",
        "-",
    ]
    assert table_row(shown, "motc", "ministry", "instances")[3:7] == ["2", "10", "8", "20%"]
    assert table_row(shown, "motc", "ministry", "ram_mib")[3:7] == [
        "16384",
        "unlimited",
        "unlimited",
        "-",
    ]
    assert table_row(shown, "thb", "agency", "vcpus") == [
        "thb",
        "agency",
        "vcpus",
        "8",
        "8",
        "0",
        "100%",
        "soft threshold (50%) reached",
    ]
    # the child's instances are unlimited there, but capped by the ministry above it
    assert table_row(shown, "thb", "agency", "instances")[3:6] == ["2", "unlimited", "8"]

    project = cli.run("quota", "show", "traffic").stdout
    assert table_row(project, "traffic", "project", "vcpus")[5:] == [
        "0",
        "-",
        "full: a level above is at its limit",
    ]

    as_json = json.loads(cli.run("quota", "show", "motc", "-o", "json").stdout)
    assert as_json == cli.api.get("/v1/quotas/motc", expect=200).json()
    as_yaml = yaml.safe_load(cli.run("quota", "show", "motc", "-o", "yaml").stdout)
    assert as_yaml == as_json
    assert as_json["children"][0]["headroom"]["vcpus"] == 0


def test_set_dry_run_unlimited_and_below_usage_warning(cli: CliHarness) -> None:
    cli.run("quota", "set", "thb", "--vcpus", "8", "--ram-mib", "65536")
    cli.api.create_instance("web", "traffic", "m1.large")

    dry = cli.run("quota", "set", "thb", "--vcpus", "2", "--unlimited", "ram-mib", "--dry-run")
    assert table_row(dry.stdout, "thb", "vcpus") == [
        "thb",
        "vcpus",
        "8",
        "2",
        "4",
        "below current usage: blocks new usage",
    ]
    assert table_row(dry.stdout, "thb", "ram_mib")[2:4] == ["65536", "unlimited"]
    assert "Dry run: 2 change(s) shown; nothing was changed." in dry.stderr
    assert "1 new limit(s) below current usage" in dry.stderr
    assert limits_of(cli, "thb") == {"vcpus": 8, "ram_mib": 65536}

    as_json = json.loads(
        cli.run(
            "quota", "set", "thb", "--vcpus", "2", "--unlimited", "ram_mib", "-o", "json"
        ).stdout
    )
    assert [(c["field"], c["new"], c["below_usage"]) for c in as_json] == [
        ("vcpus", 2, True),
        ("ram_mib", None, False),
    ]
    assert limits_of(cli, "thb") == {"vcpus": 2}
    shown = cli.run("quota", "show", "thb").stdout
    assert table_row(shown, "thb", "agency", "vcpus")[7] == "OVER LIMIT: blocks new usage"
    assert "thb: over its limit in vcpus" in cli.run("quota", "show", "thb").stderr

    again = cli.run("quota", "set", "thb", "--vcpus", "2")
    assert "No changes: the limits of thb are already so." in again.stderr
    assert rows(again.stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["thb"], "nothing to change"),
        (["thb", "--vcpus", "4", "--unlimited", "vcpus"], "vcpus is given both a limit (4)"),
        (["thb", "--unlimited", "cpus"], "unknown dimension 'cpus'"),
        (["thb", "--soft-threshold", "1.5"], "soft_threshold"),
        (["thb", "--vcpus", "-1"], "greater than or equal to 0"),
    ],
)
def test_set_refuses_bad_input_locally(cli: CliHarness, args: list[str], message: str) -> None:
    result = cli.run("quota", "set", *args, code=ExitCode.USAGE)
    assert message in result.output
    assert limits_of(cli, "thb") == {}


def test_set_by_a_ministry_admin_on_its_own_ministry_is_refused(cli: CliHarness) -> None:
    token = cli.api.create_user("motc-admin", "ministry-admin", "motc")
    cli.run("quota", "set", "thb", "--vcpus", "64", token=token)
    result = cli.run("quota", "set", "motc", "--vcpus", "9999", token=token, code=ExitCode.AUTH)
    assert "limits are set by the level above" in result.stderr
    result = cli.run("quota", "show", "moi", token=token, code=ExitCode.NOT_FOUND)
    assert "org 'moi' not found" in result.stderr


# -- apply -----------------------------------------------------------------------------------


def test_apply_shows_the_diff_then_applies_and_is_idempotent(
    cli: CliHarness, tmp_path: Path
) -> None:
    path = policy_file(tmp_path)
    dry = cli.run("quota", "apply", path, "--dry-run")
    assert f"{path} makes 7 change(s):" in dry.stderr
    assert column(rows(dry.stdout), 0) == ["motc", "motc", "thb", "thb", "thb", "thb", "thb"]
    assert table_row(dry.stdout, "thb", "vcpus")[2:4] == ["unlimited", "32"]
    assert "Dry run: 7 change(s) shown; nothing was changed." in dry.stderr
    assert limits_of(cli, "motc") == {}

    applied = cli.run("quota", "apply", path, "--yes")
    assert rows(applied.stdout) == rows(dry.stdout)  # the same diff, shown before applying
    assert f"Applied 7 change(s) from {path}." in applied.stderr
    assert limits_of(cli, "motc") == {"instances": 100, "vcpus": 64}
    assert limits_of(cli, "thb")["vcpus"] == 32

    again = cli.run("quota", "apply", path, "--yes")
    assert f"No changes: {path} is already applied." in again.stderr
    assert rows(again.stdout) == []
    assert json.loads(cli.run("quota", "apply", path, "-o", "json").stdout) == []

    # one edited line: exactly that change; without --yes and no terminal, it applies
    policy_file(tmp_path, POLICY.replace("vcpus: 32", "vcpus: 48"))
    changed = cli.run("quota", "apply", path)
    assert [[c.strip() for c in r.split("│")[1:5]] for r in rows(changed.stdout)] == [
        ["thb", "vcpus", "32", "48"]
    ]
    assert limits_of(cli, "thb")["vcpus"] == 48


def test_apply_asks_on_a_terminal_unless_yes(
    cli: CliHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quota_cli, "interactive", lambda: True)
    path = policy_file(tmp_path)
    declined = cli.run("quota", "apply", path, stdin="n\n", code=ExitCode.API_ERROR)
    assert "Apply 7 change(s)?" in declined.stdout
    assert "nothing was changed" in declined.stderr
    assert limits_of(cli, "motc") == {}

    accepted = cli.run("quota", "apply", path, stdin="y\n")
    assert f"Applied 7 change(s) from {path}." in accepted.stderr
    assert limits_of(cli, "motc") == {"instances": 100, "vcpus": 64}

    policy_file(tmp_path, POLICY.replace("vcpus: 64", "vcpus: 65"))
    cli.run("quota", "apply", path, "--yes", stdin="")  # --yes: no question asked
    assert limits_of(cli, "motc")["vcpus"] == 65


def test_a_bad_policy_file_prints_every_problem_with_file_and_line(
    cli: CliHarness, tmp_path: Path
) -> None:
    path = policy_file(
        tmp_path,
        "classes:\n"
        "  c1:\n"
        "    limits: {cpus: 4}\n"
        "    soft_threshold: 2\n"
        "assignments:\n"
        "  - {org: motc, limits: {vcpus: -5}}\n",
        name="bad.yaml",
    )
    result = cli.run("quota", "apply", path, "--yes", code=ExitCode.USAGE)
    lines = result.stderr.splitlines()
    assert f"{path}:3: field 'classes.c1.limits.cpus': unknown dimension 'cpus'" in (result.stderr)
    expected = [
        f"{path}:3: field 'classes.c1.limits.cpus': unknown dimension 'cpus' (known: "
        "instances, vcpus, ram_mib, disk_gib, trial_envs)",
        f"{path}:4: field 'classes.c1.soft_threshold': must be a number in (0, 1], got 2",
        f"{path}:6: field 'assignments[0].limits.vcpus': must be a non-negative integer, got -5",
    ]
    for line in expected:
        assert line in lines, result.stderr
    assert "quota.policy_invalid" in result.stderr
    assert "Next: fix the file" in result.stderr
    assert limits_of(cli, "motc") == {}

    unknown = policy_file(tmp_path, "assignments:\n  - {org: atlantis, limits: {vcpus: 1}}\n")
    result = cli.run("quota", "apply", unknown, "--dry-run", code=ExitCode.USAGE)
    assert f"{unknown}:2: field 'assignments[0].org': unknown organisation 'atlantis'" in (
        result.stderr.splitlines()
    )

    missing = str(tmp_path / "missing.yaml")
    result = cli.run("quota", "apply", missing, code=ExitCode.USAGE)
    assert f"cannot read {missing}" in result.stderr


# -- verify / events / server create ---------------------------------------------------------


def test_verify_reports_drift_exits_1_and_repairs_it(cli: CliHarness) -> None:
    cli.api.create_instance("web", "traffic", "m1.large")
    assert "No drift" in cli.run("quota", "verify").stderr

    with cli.api.store.db.engine.begin() as conn:
        conn.execute(
            update(QuotaNodeRow).where(QuotaNodeRow.org == "thb").values(usage={"vcpus": 1})
        )
    found = cli.run("quota", "verify", code=ExitCode.API_ERROR)
    assert table_row(found.stdout, "thb", "vcpus") == ["thb", "vcpus", "1", "4", "no"]
    assert table_row(found.stdout, "thb", "instances")[2:4] == ["0", "1"]
    assert "stored usage of 1 node(s) differs" in found.stderr
    assert "govcloud quota verify --repair" in found.stderr
    as_json: list[dict[str, Any]] = json.loads(
        cli.run("quota", "verify", "-o", "json", code=ExitCode.API_ERROR).stdout
    )
    assert [(d["org"], d["repaired"]) for d in as_json] == [("thb", False)]

    repaired = cli.run("quota", "verify", "--repair")
    assert table_row(repaired.stdout, "thb", "vcpus")[4] == "yes"
    assert "Repaired the usage of 1 node(s)." in repaired.stderr
    assert "No drift" in cli.run("quota", "verify").stderr


def test_events_list_soft_threshold_crossings(cli: CliHarness) -> None:
    assert "No soft-threshold events in motc." in cli.run("quota", "events", "motc").stderr
    cli.run("quota", "set", "motc", "--instances", "4", "--soft-threshold", "0.5")
    for i in range(3):
        cli.api.create_instance(f"vm-{i}", "traffic", "m1.tiny")
    shown = cli.run("quota", "events", "motc").stdout
    first = [c.strip() for c in rows(shown)[0].strip("│").split("│")]
    assert first[1:6] == ["motc", "ministry", "instances", "2", "4"]
    assert "ministry motc: instances 1 used" in first[6]
    [event] = json.loads(cli.run("quota", "events", "motc", "-o", "json").stdout)
    assert (
        "ministry motc: instances 1 used + 1 requested = 2 >= 50% of limit 4" in (event["message"])
    )


def test_server_create_over_quota_lists_violations_and_what_to_do(cli: CliHarness) -> None:
    cli.run("quota", "set", "motc", "--vcpus", "4")
    cli.run("quota", "set", "thb", "--vcpus", "4", "--instances", "1")
    cli.run("server", "create", "first", "-p", "traffic", "-f", "m1.small", "-i", "cirros")
    result = cli.run(
        "server",
        "create",
        "second",
        "-p",
        "traffic",
        "-f",
        "m1.large",
        "-i",
        "cirros",
        code=ExitCode.API_ERROR,  # refused by policy: exit 1, not the auth code
    )
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "Error: quota exceeded; the request was refused and nothing was changed: "
        "[quota.exceeded, request req-"
    )
    assert lines[1:4] == [
        "  - ministry motc: vcpus 1 used + 4 requested > limit 4",
        "  - agency thb: instances 1 used + 1 requested > limit 1",
        "  - agency thb: vcpus 1 used + 4 requested > limit 4",
    ]
    assert lines[4] == (
        "Next: ask a platform admin to raise the limit (`govcloud quota show motc`), "
        "or delete servers you no longer need"
    )
    assert [i["name"] for i in cli.api.instances()] == ["first"]

    # an agency's limit alone: the ministry's admin can raise it
    cli.run("quota", "set", "motc", "--unlimited", "vcpus")
    result = cli.run(
        "server", "create", "third", "-p", "traffic", "-f", "m1.tiny", "-i", "cirros", code=1
    )
    assert "Next: ask your ministry admin to raise the limit (`govcloud quota show thb`)" in (
        result.stderr
    )
