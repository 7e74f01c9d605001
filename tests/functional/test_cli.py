"""The ``govcloud`` CLI against the real API in-process (SQLite): configuration, output
formats, the server lifecycle with an agent stand-in, and errors with their exit codes.

Uses the ``sqlite_url`` and ``api_factory`` fixtures of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import stat
from typing import Any

import httpx
import yaml

from controlplane.cli.errors import ExitCode
from controlplane.client import GovcloudClient
from tests.api_helper import ADMIN_TOKEN
from tests.functional.cli_helpers import BASE_URL, CliHarness, column, rows

OK = ExitCode.OK


def _json(text: str) -> Any:
    return json.loads(text)


# -- configuration ------------------------------------------------------------------------


def test_login_saves_url_and_token_privately_and_later_commands_use_them(cli: CliHarness) -> None:
    bare = cli.env(token=None, url=None)
    result = cli.run("whoami", code=ExitCode.USAGE, env=bare)
    assert "no control plane URL is configured" in result.stderr
    assert "govcloud login" in result.stderr

    result = cli.run("login", "--url", BASE_URL + "/", "--token", ADMIN_TOKEN, env=bare)
    assert "as admin (platform-admin, scope gov)" in result.stderr
    mode = stat.S_IMODE(cli.config_path.stat().st_mode)
    assert mode == 0o600
    assert yaml.safe_load(cli.config_path.read_text()) == {"url": BASE_URL, "token": ADMIN_TOKEN}

    who = _json(cli.run("whoami", "-o", "json", env=bare).stdout)
    assert who == {"name": "admin", "role": "platform-admin", "scope": "gov"}

    shown = yaml.safe_load(cli.run("config", "show", "-o", "yaml", env=bare).stdout)
    assert shown["url"] == BASE_URL
    assert shown["token_source"] == str(cli.config_path)
    assert ADMIN_TOKEN not in json.dumps(shown)  # masked

    cli.run("logout", env=bare)
    assert yaml.safe_load(cli.config_path.read_text()) == {"url": BASE_URL}
    result = cli.run("whoami", code=ExitCode.AUTH, env=bare)
    assert "missing bearer token" in result.stderr


def test_login_with_a_wrong_token_saves_nothing(cli: CliHarness) -> None:
    bare = cli.env(token=None, url=None)
    result = cli.run("login", "--url", BASE_URL, "--token", "not-a-token", code=4, env=bare)
    assert "Next: log in again" in result.stderr
    assert not cli.config_path.exists()


def test_login_prompts_for_the_token_when_not_given(cli: CliHarness) -> None:
    bare = cli.env(token=None, url=None)
    cli.run("login", "--url", BASE_URL, env=bare, stdin=ADMIN_TOKEN + "\n")
    assert yaml.safe_load(cli.config_path.read_text())["token"] == ADMIN_TOKEN


def test_environment_overrides_the_config_file(cli: CliHarness) -> None:
    cli.run(
        "login",
        "--url",
        BASE_URL,
        "--token",
        "stale-token",
        "--no-verify",
        env=cli.env(token=None, url=None),
    )
    cli.run("whoami", code=ExitCode.AUTH, env=cli.env(token=None, url=None))
    result = cli.run("config", "show", "-o", "json")  # GOVCLOUD_TOKEN set by the harness
    assert _json(result.stdout)["token_source"] == "$GOVCLOUD_TOKEN"
    cli.run("whoami")


# -- output formats -----------------------------------------------------------------------


def test_lists_print_tables_for_people_and_json_or_yaml_for_scripts(cli: CliHarness) -> None:
    table = cli.run("flavor", "list").stdout
    assert "VCPUS" in table
    assert column(rows(table), 0) == ["m1.tiny", "m1.small", "m1.medium", "m1.large"]

    as_json = _json(cli.run("flavor", "list", "-o", "json").stdout)
    assert isinstance(as_json, list)
    assert {f["name"]: f["ram_mib"] for f in as_json}["m1.medium"] == 4096

    as_yaml = yaml.safe_load(cli.run("flavor", "list", "--output", "yaml").stdout)
    assert as_yaml == as_json

    one = yaml.safe_load(cli.run("dc", "show", "tpe-1", "-o", "yaml").stdout)
    assert one == {
        "code": "tpe-1",
        "name": "Taipei 1",
        "location": "",
        "state": "active",
        "placement_policy": "spread",
        "evacuation_policy": "none",
    }
    shown = cli.run("dc", "show", "tpe-1").stdout
    assert "Taipei 1" in shown
    assert "{" not in shown


def test_org_tree_users_and_catalogue_commands(cli: CliHarness) -> None:
    cli.run("org", "create", "mohw", "--name", "Ministry of Health and Welfare", "--parent", "gov")
    cli.run("org", "create", "cdc", "--name", "Centers for Disease Control", "--parent", "mohw")
    created = _json(
        cli.run(
            "org",
            "create",
            "disease-watch",
            "--name",
            "Surveillance",
            "--parent",
            "cdc",
            "-o",
            "json",
        ).stdout
    )
    assert created["path"] == "gov/mohw/cdc/disease-watch"
    codes = column(rows(cli.run("org", "list").stdout), 0)
    assert codes.index("mohw") < codes.index("cdc") < codes.index("disease-watch")  # tree order

    made = _json(
        cli.run(
            "user",
            "create",
            "mohw-admin",
            "--role",
            "ministry-admin",
            "--org",
            "mohw",
            "-o",
            "json",
        ).stdout
    )
    token = made["token"]
    who = _json(cli.run("whoami", "-o", "json", token=token).stdout)
    assert who == {"name": "mohw-admin", "role": "ministry-admin", "scope": "gov/mohw"}
    table = cli.run("user", "create", "cdc-ops", "--role", "member", "--org", "cdc", token=token)
    assert "shown only this once" in table.stderr
    names = column(rows(cli.run("user", "list", token=token).stdout), 0)
    assert sorted(names) == ["cdc-ops", "mohw-admin"]

    cli.run("dc", "create", "khh-1", "--name", "Kaohsiung 1", "--location", "Kaohsiung")
    cli.run("dc", "update", "khh-1", "--state", "draining")
    assert _json(cli.run("dc", "show", "khh-1", "-o", "json").stdout)["state"] == "draining"
    cli.run("dc", "delete", "khh-1")
    cli.run("dc", "show", "khh-1", code=ExitCode.NOT_FOUND)

    cli.run(
        "flavor", "create", "m1.xlarge", "--vcpus", "8", "--ram-mib", "16384", "--disk-gib", "160"
    )
    cli.run(
        "image",
        "create",
        "rocky-9",
        "--path",
        "/var/lib/govcloud/images/rocky-9.qcow2",
        "--min-ram-mib",
        "1024",
    )
    assert "rocky-9" in column(rows(cli.run("image", "list").stdout), 0)
    cli.run("image", "delete", "rocky-9")
    cli.run("flavor", "delete", "m1.xlarge")


def test_hosts_tokens_and_updates(cli: CliHarness) -> None:
    token = yaml.safe_load(cli.run("host", "token", "create", "--dc", "tpe-1", "-o", "yaml").stdout)
    assert token["datacentre"] == "tpe-1"
    cli.api.register_host("tpe-1-h01", token=token["token"], vcpus=16, ram_mib=32768)
    cli.api.register_host("tpe-1-h02")

    table = cli.run("host", "list", "--dc", "tpe-1").stdout
    assert column(rows(table), 0) == ["tpe-1-h01", "tpe-1-h02"]
    assert "0/64 (0%)" in table  # 16 vCPU at the default 4x overcommit

    cli.run("host", "update", "tpe-1-h02", "--state", "maintenance", "--cpu-ratio", "2")
    shown = _json(cli.run("host", "show", "tpe-1-h02", "-o", "json").stdout)
    assert shown["state"] == "maintenance"
    assert shown["ratios"] == {"cpu": 2.0, "ram": 1.0, "disk": 1.0}
    listed = _json(cli.run("host", "list", "--state", "maintenance", "-o", "json").stdout)
    assert [h["name"] for h in listed] == ["tpe-1-h02"]
    cli.run("host", "update", "tpe-1-h02", code=ExitCode.USAGE)  # nothing to change


# -- servers ------------------------------------------------------------------------------


def test_server_lifecycle_with_wait(cli: CliHarness) -> None:
    cli.add_agent("tpe-1-h01")
    result = cli.run(
        "server", "create", "web-01", "-p", "disaster", "-f", "m1.small", "-i", "cirros", "--wait"
    )
    assert "SCHEDULED -> BUILDING" in result.stderr
    assert "BUILDING -> RUNNING" in result.stderr
    assert "tpe-1/tpe-1-h01" in result.stderr
    assert "RUNNING" in result.stdout

    listed = _json(cli.run("server", "list", "-o", "json").stdout)
    assert [(s["name"], s["state"], s["host_name"]) for s in listed] == [
        ("web-01", "RUNNING", "tpe-1-h01")
    ]
    server_id = listed[0]["id"]
    by_name = yaml.safe_load(cli.run("server", "show", "web-01", "-o", "yaml").stdout)
    assert by_name["id"] == server_id

    stopped = _json(cli.run("server", "stop", "web-01", "--wait", "-o", "json").stdout)
    assert stopped["state"] == "STOPPED"
    started = _json(cli.run("server", "start", server_id, "--wait", "-o", "json").stdout)
    assert started["state"] == "RUNNING"
    cli.run("server", "reboot", "web-01")
    cli.sleep(1)  # the agent applies the reboot
    cli.run("server", "reboot", "web-01", "--wait", code=ExitCode.USAGE)  # reboot has no --wait

    cli.run("server", "delete", "web-01", "--wait")
    assert cli.run("server", "list", "-o", "json").stdout.strip() == "[]"
    gone = _json(cli.run("server", "list", "--state", "deleted", "-o", "json").stdout)
    assert [s["name"] for s in gone] == ["web-01"]

    actions = _json(cli.run("server", "actions", server_id, "-o", "json").stdout)
    assert [(a["action"], a["result"]) for a in actions] == [
        ("create", "success"),
        ("stop", "success"),
        ("start", "success"),
        ("reboot", "success"),
        ("delete", "success"),
    ]
    table = cli.run("server", "actions", server_id).stdout
    assert column(rows(table), 0) == ["create", "stop", "start", "reboot", "delete"]


def test_wait_follows_a_pending_server_until_capacity_appears(cli: CliHarness) -> None:
    def capacity_arrives() -> None:
        if cli.now >= 3 and not cli.api.hosts():
            cli.add_agent("tpe-1-h01")
            cli.api.place_pending()

    cli.on_tick.append(capacity_arrives)
    result = cli.run(
        "server",
        "create",
        "web-01",
        "-p",
        "disaster",
        "-f",
        "m1.small",
        "-i",
        "cirros",
        "--wait",
        "-o",
        "json",
    )
    assert "pending: no hosts are registered" in result.stderr
    for step in ("PENDING -> SCHEDULED", "SCHEDULED -> BUILDING", "BUILDING -> RUNNING"):
        assert step in result.stderr
    assert _json(result.stdout)["state"] == "RUNNING"


def test_wait_times_out_with_exit_6_and_says_why_it_is_pending(cli: CliHarness) -> None:
    cli.add_agent("tpe-1-h01", vcpus=2, ram_mib=2048)
    result = cli.run(
        "server",
        "create",
        "big-01",
        "-p",
        "disaster",
        "-f",
        "m1.large",
        "-i",
        "cirros",
        "--wait",
        "--timeout",
        "5",
        code=ExitCode.TIMEOUT,
    )
    assert "still PENDING after 5 s" in result.stderr
    assert "no valid host among 1 evaluated" in result.stderr
    assert "placed automatically when capacity appears" in result.stderr
    listed = _json(cli.run("server", "list", "--state", "PENDING", "-o", "json").stdout)
    assert listed[0]["pending_reason"]
    table = cli.run("server", "list").stdout
    assert "no valid host" in table  # NOTE column


def test_a_build_failure_exits_1_with_the_agent_fault(cli: CliHarness) -> None:
    agent = cli.add_agent("tpe-1-h01")
    agent.failing["web-01"] = "cannot open /var/lib/govcloud/cirros.qcow2: no such file"
    result = cli.run(
        "server",
        "create",
        "web-01",
        "-p",
        "disaster",
        "-f",
        "m1.small",
        "-i",
        "cirros",
        "--wait",
        code=ExitCode.API_ERROR,
    )
    assert "SCHEDULED -> ERROR" in result.stderr
    assert "is ERROR: cannot open /var/lib/govcloud/cirros.qcow2" in result.stderr
    assert "govcloud server actions" in result.stderr
    result = cli.run("server", "reboot", "web-01", code=ExitCode.API_ERROR)  # not RUNNING
    assert "reboot is accepted in: RUNNING" in result.stderr
    assert "instance.invalid_state" in result.stderr


def test_server_names_resolve_only_when_unambiguous(cli: CliHarness) -> None:
    cli.add_agent("tpe-1-h01")
    for _ in range(2):
        cli.run("server", "create", "twin", "-p", "disaster", "-f", "m1.tiny", "-i", "cirros")
    result = cli.run("server", "show", "twin", code=ExitCode.USAGE)
    assert "2 servers are named 'twin'" in result.stderr


def test_instance_list_follows_pages(cli: CliHarness) -> None:
    cli.add_agent("tpe-1-h01")
    for n in range(5):
        cli.run("server", "create", f"web-{n}", "-p", "disaster", "-f", "m1.tiny", "-i", "cirros")
    client = GovcloudClient(BASE_URL, ADMIN_TOKEN, http=cli.api.client)
    first = client.list_instances(limit=2)
    assert len(first.items) == 2
    assert first.next_marker
    assert [i.name for i in client.iter_instances(page_size=2)] == [f"web-{n}" for n in range(5)]
    shown = _json(cli.run("server", "list", "--limit", "3", "-o", "json").stdout)
    assert len(shown) == 3


# -- errors and exit codes ----------------------------------------------------------------


def test_not_found_exits_3_with_the_api_message(cli: CliHarness) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    result = cli.run("server", "show", missing, code=ExitCode.NOT_FOUND)
    assert f"instance '{missing}' not found" in result.stderr
    assert "[instance.not_found, request req-" in result.stderr
    result = cli.run("server", "show", "no-such-server", code=ExitCode.NOT_FOUND)
    assert "no server named 'no-such-server'" in result.stderr
    result = cli.run("flavor", "show", "m9.huge", code=ExitCode.NOT_FOUND)
    assert "govcloud flavor list" in result.stderr
    cli.run(
        "server",
        "create",
        "web-01",
        "-p",
        "disaster",
        "-f",
        "m9.huge",
        "-i",
        "cirros",
        code=ExitCode.NOT_FOUND,
    )


def test_invalid_input_exits_2_and_names_the_rule(cli: CliHarness) -> None:
    result = cli.run(
        "server",
        "create",
        "<web>",
        "-p",
        "disaster",
        "-f",
        "m1.small",
        "-i",
        "cirros",
        code=ExitCode.USAGE,
    )
    assert "invalid input: name: String should match pattern" in result.stderr
    assert "'<web>'" in result.stderr
    assert "Next: fix the value" in result.stderr
    result = cli.run(
        "org", "create", "Bad Code", "--name", "x", "--parent", "gov", code=ExitCode.USAGE
    )
    assert "code:" in result.stderr
    # Refused by the API (a project is needed), also a usage problem.
    result = cli.run(
        "server",
        "create",
        "web-01",
        "-p",
        "moi",
        "-f",
        "m1.small",
        "-i",
        "cirros",
        code=ExitCode.USAGE,
    )
    assert "instances belong to projects" in result.stderr
    # Typer's own usage errors use the same code.
    cli.run("server", "create", "web-01", code=ExitCode.USAGE)
    cli.run("server", "list", "-o", "xml", code=ExitCode.USAGE)


def test_auth_failures_exit_4_with_what_to_do(cli: CliHarness) -> None:
    result = cli.run("server", "list", token="wrong-token-wrong-token", code=ExitCode.AUTH)
    assert "govcloud login" in result.stderr
    auditor = cli.api.create_user("auditor", "auditor", "gov")
    cli.run("server", "list", token=auditor)  # auditors read
    result = cli.run(
        "dc", "create", "khh-1", "--name", "Kaohsiung", token=auditor, code=ExitCode.AUTH
    )
    assert "may not change infrastructure" in result.stderr
    assert "govcloud whoami" in result.stderr
    member = cli.api.create_user("nfa-ops", "member", "nfa")
    cli.run("audit", "list", token=member, code=ExitCode.AUTH)


def test_unreachable_control_plane_exits_5(cli: CliHarness) -> None:
    real_http = cli.env(url="http://127.0.0.1:9", factory=GovcloudClient)
    result = cli.run("server", "list", env=real_http, code=ExitCode.UNREACHABLE)
    assert "cannot reach the govcloud API at http://127.0.0.1:9" in result.stderr
    assert "govcloud config show" in result.stderr


def test_a_failing_proxy_is_reported_with_its_status(cli: CliHarness) -> None:
    def bad_gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>502 Bad Gateway</html>")

    proxy = httpx.Client(transport=httpx.MockTransport(bad_gateway))
    env = cli.env(factory=lambda url, token: GovcloudClient(url, token, http=proxy))
    result = cli.run("org", "list", env=env, code=ExitCode.API_ERROR)
    assert "502 Bad Gateway" in result.stderr
    assert "[http.502]" in result.stderr
    assert "the control plane failed" in result.stderr


def test_audit_list_shows_who_did_what(cli: CliHarness) -> None:
    cli.run("dc", "create", "khh-1", "--name", "Kaohsiung 1")
    events = _json(cli.run("audit", "list", "--action", "dc.create", "-o", "json").stdout)
    newest = events[0]
    assert (newest["actor"], newest["target_id"], newest["outcome"]) == (
        "admin",
        "khh-1",
        "success",
    )
    assert {e["action"] for e in events} == {"dc.create"}
    table = cli.run("audit", "list", "--limit", "2").stdout
    assert len(rows(table)) == 2


def test_unexpected_errors_are_reported_without_a_traceback(cli: CliHarness) -> None:
    def broken(url: str, token: str | None) -> GovcloudClient:
        raise RuntimeError("boom")

    result = cli.run("whoami", env=cli.env(factory=broken), code=ExitCode.API_ERROR)
    assert "Internal error: RuntimeError: boom" in result.stderr
    assert "GOVCLOUD_DEBUG=1" in result.stderr
