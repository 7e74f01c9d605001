"""SLA over the real API on SQLite and PostgreSQL: history recorded by real state changes
(agent stand-in, fake clock), the monthly report's content, maintenance windows, role
checks and the CLI's output formats.

The world (``build_world``), November 2026, clock standing still unless advanced:

- moi/disaster: ``dr-web`` and ``dr-db`` on host tpe-1-h01, launched 2 and 4 minutes after
  they were accepted on 31 October; on 10 November 02:00 both go to ERROR, back at 02:45
  and 02:30 (one incident, 45 minutes to recover, 75 instance-minutes down).
- motc/traffic: ``tis-api`` on tpe-1-h02; stopped by its tenant from 12 to 13 November
  (and an error while stopped: not counted); ERROR from 20 November 01:30 to 02:30, inside
  an announced window for tpe-1 (01:00-03:00): excluded. ``tis-bad`` fails to build.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.cli.errors import ExitCode
from tests.api_helper import Agent, Api, FakeClock, error, fields_named
from tests.functional.cli_helpers import CliHarness, column, rows

T0 = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NOV_MINUTES = 30 * 24 * 60


@pytest.fixture
def sla_api(seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    """The standard seed, with a clock that stands still at T0 until advanced."""
    return api_factory(seeded_url, migrate=False, clock=FakeClock(T0, tick=timedelta(0)))


def advance_to(api: Api, when: datetime) -> None:
    now = api.clock()
    assert when >= now
    api.clock.advance(when - now)


def nov(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def build_world(api: Api) -> dict[str, Any]:
    h01 = api.register_host("tpe-1-h01", vcpus=8, ram_mib=16384)
    h02 = api.register_host("tpe-1-h02", vcpus=8, ram_mib=16384)
    web = api.create_instance("dr-web", project="disaster", flavor="m1.small")
    db = api.create_instance("dr-db", project="disaster", flavor="m1.small")
    assert {web["host_name"], db["host_name"]} <= {"tpe-1-h01", "tpe-1-h02"}
    # Pin the two moi servers on h01 and motc's on h02, whatever the scheduler chose.
    on: dict[str, Agent] = {"tpe-1-h01": h01, "tpe-1-h02": h02}
    agent_web, agent_db = on[web["host_name"]], on[db["host_name"]]
    advance_to(api, T0 + timedelta(minutes=2))
    agent_web.status(web["id"], "running")
    advance_to(api, T0 + timedelta(minutes=4))
    agent_db.status(db["id"], "running")
    tis = api.create_instance("tis-api", project="traffic", flavor="m1.small")
    agent_tis = on[tis["host_name"]]
    advance_to(api, T0 + timedelta(minutes=5))
    agent_tis.status(tis["id"], "running")
    bad = api.create_instance("tis-bad", project="traffic", flavor="m1.small")
    on[bad["host_name"]].status(bad["id"], "error", message="image checksum mismatch")

    advance_to(api, nov(10, 2))
    agent_web.status(web["id"], "error", message="qemu crashed")
    agent_db.status(db["id"], "error", message="qemu crashed")
    advance_to(api, nov(10, 2, 30))
    agent_db.status(db["id"], "running")
    advance_to(api, nov(10, 2, 45))
    agent_web.status(web["id"], "running")

    advance_to(api, nov(12))
    api.act(tis["id"], "stop")
    agent_tis.status(tis["id"], "stopped")
    advance_to(api, nov(12, 6))
    agent_tis.status(tis["id"], "error", message="host lost power")  # while stopped
    agent_tis.status(tis["id"], "stopped")
    advance_to(api, nov(13))
    api.act(tis["id"], "start")
    advance_to(api, nov(13, 0, 1))
    agent_tis.status(tis["id"], "running")

    window = api.post(
        "/v1/maintenance-windows",
        json={"datacentre": "tpe-1", "starts_at": "2026-11-20T01:00:00Z",
              "ends_at": "2026-11-20T03:00:00Z", "reason": "UPS replacement"},
        expect=201,
    ).json()  # fmt: skip
    advance_to(api, nov(20, 1, 30))
    agent_tis.status(tis["id"], "error", message="network partition")
    advance_to(api, nov(20, 2, 30))
    agent_tis.status(tis["id"], "running")

    advance_to(api, NOW)
    return {"web": web, "db": db, "tis": tis, "bad": bad, "window": window,
            "same_host": agent_web is agent_db}  # fmt: skip


def report(api: Api, token: str | None = None, **params: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"token": token} if token else {}
    body: dict[str, Any] = api.get(
        "/v1/sla/report", params={"month": "2026-11"} | params, expect=200, **kwargs
    ).json()
    return body


def by_ministry(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["ministry"]: m for m in body["ministries"]}


# -- history ------------------------------------------------------------------------------------


def test_every_state_and_power_change_is_recorded(sla_api: Api) -> None:
    world = build_world(sla_api)
    (history,) = [
        h
        for h in sla_api.store.sla.histories("gov", nov(1), NOW)
        if h.instance_id == world["tis"]["id"]
    ]
    seen = [(e.at, e.state, e.desired_power) for e in history.events]
    # Placed at once: the instance is stored SCHEDULED (it never was PENDING).
    assert seen[0] == (T0 + timedelta(minutes=4), "SCHEDULED", "running")
    assert seen[1:] == [
        (T0 + timedelta(minutes=5), "RUNNING", "running"),
        (nov(12), "RUNNING", "stopped"),  # the tenant's intent, before the agent acts
        (nov(12), "STOPPED", "stopped"),
        (nov(12, 6), "ERROR", "stopped"),
        (nov(12, 6), "STOPPED", "stopped"),
        (nov(13), "STOPPED", "running"),
        (nov(13, 0, 1), "RUNNING", "running"),
        (nov(20, 1, 30), "ERROR", "running"),
        (nov(20, 2, 30), "RUNNING", "running"),
    ]
    assert {e.host_id for e in history.events} == {world["tis"]["host"]}


def test_a_rolled_back_change_leaves_no_history(sla_api: Api) -> None:
    sla_api.register_host("tpe-1-h01")
    made = sla_api.create_instance("web", project="disaster")
    sla_api.act(made["id"], "start", expect=409)  # refused: SCHEDULED cannot start
    (history,) = sla_api.store.sla.histories("gov", T0, NOW)
    assert [e.state for e in history.events] == ["SCHEDULED"]


# -- the report -----------------------------------------------------------------------------------


def test_report_of_every_ministry(sla_api: Api) -> None:
    world = build_world(sla_api)
    body = report(sla_api, all="true")
    assert (body["month"], body["scope"], body["complete"]) == ("2026-11", "all", True)
    assert body["as_of"].startswith("2026-12-01T00:00:00")
    moi, motc = by_ministry(body)["moi"], by_ministry(body)["motc"]

    assert moi["target"]["service_class"] == "gold"  # from the packaged targets.yaml
    assert moi["availability"] == {
        "eligible_minutes": 2 * NOV_MINUTES,
        "excluded_minutes": 240.0,  # the window for all of tpe-1, 2 h each
        "downtime_minutes": 75.0,
        "availability_pct": round(100 * (1 - 75 / (2 * NOV_MINUTES - 240)), 4),
    }
    assert moi["attained"] is False
    budget = moi["error_budget"]
    allowed = (2 * NOV_MINUTES - 240) * 0.0005
    assert budget["allowed_minutes"] == pytest.approx(allowed)
    assert budget["remaining_minutes"] == pytest.approx(allowed - 75)
    (breach,) = moi["breaches"]
    assert breach["kind"] == "availability"
    assert "below the gold target of 99.95 %" in breach["message"]
    (worst, second) = moi["worst_instances"]
    assert (worst["name"], worst["downtime_minutes"], worst["outages"]) == ("dr-web", 45.0, 1)
    assert (second["name"], second["downtime_minutes"]) == ("dr-db", 30.0)
    assert [(o["kind"], o["org"]) for o in moi["orgs"]] == [
        ("agency", "nfa"), ("project", "disaster")
    ]  # fmt: skip
    # Accepted on 31 October: November has no provisioning of its own.
    assert moi["provisioning"]["accepted"] == 0

    counted = NOV_MINUTES - 24 * 60 - 1  # minus the stop (12th 00:00 to 13th 00:01)
    assert motc["target"]["service_class"] == "silver"
    assert motc["availability"]["eligible_minutes"] == counted
    assert motc["availability"]["excluded_minutes"] == 120.0  # the whole window
    assert motc["availability"]["downtime_minutes"] == 0.0
    assert motc["availability"]["availability_pct"] == 100.0
    assert (motc["attained"], motc["breaches"]) == (True, [])
    assert motc["worst_instances"] == []

    if world["same_host"]:
        (incident,) = body["incidents"]
        assert incident["instances"] == sorted([world["web"]["id"], world["db"]["id"]])
        assert incident["time_to_recover_minutes"] == 45.0
        assert incident["downtime_minutes"] == 75.0
    else:
        assert len(body["incidents"]) == 2
    incident = body["incidents"][0]
    assert incident["ministries"] == ["moi"]
    assert incident["start"].startswith("2026-11-10T02:00:00")
    assert not incident["ongoing"]
    assert breach["incidents"] == [i["id"] for i in body["incidents"]]
    assert (body["attained"], body["breached"]) == (len(body["ministries"]) - 1, 1)


def test_provisioning_figures_of_the_month_they_were_accepted(sla_api: Api) -> None:
    build_world(sla_api)
    october = report(sla_api, month="2026-10", all="true")
    moi, motc = by_ministry(october)["moi"], by_ministry(october)["motc"]
    assert moi["provisioning"] | {} == {
        "accepted": 2, "launched": 2, "failed": 0, "cancelled": 0, "in_progress": 0,
        "p50_minutes": 2.0, "p95_minutes": 4.0, "p99_minutes": 4.0, "max_minutes": 4.0,
        "attained": True,
    }  # fmt: skip
    assert (motc["provisioning"]["accepted"], motc["provisioning"]["failed"]) == (2, 1)
    assert motc["provisioning"]["p95_minutes"] == 1.0  # the failed one has no time


def test_a_month_still_running_counts_up_to_now(sla_api: Api) -> None:
    build_world(sla_api)
    advance_to(sla_api, datetime(2026, 12, 2, tzinfo=UTC))
    december = report(sla_api, month="2026-12", all="true")
    assert december["complete"] is False
    assert december["as_of"].startswith("2026-12-02T00:00:00")
    assert by_ministry(december)["moi"]["availability"]["eligible_minutes"] == 2 * 24 * 60


def test_targets_file_override(
    seeded_url: str, api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "default_class: basic\nclasses:\n  basic:\n    availability_pct: 99\n"
        "    provisioning_p95_minutes: 60\n",
        encoding="utf-8",
    )
    api = api_factory(seeded_url, migrate=False, clock=FakeClock(T0, tick=timedelta(0)),
                      sla_targets_file=path)  # fmt: skip
    build_world(api)
    moi = by_ministry(report(api, all="true"))["moi"]
    assert (moi["target"]["service_class"], moi["attained"], moi["breaches"]) == (
        "basic", True, []
    )  # fmt: skip
    path.write_text("default_class: gold\nclasses: {}\n", encoding="utf-8")
    body = error(api.get("/v1/sla/report", params={"month": "2026-11"}), 400,
                 "sla.targets_invalid")  # fmt: skip
    assert {p["field"] for p in body["details"]["problems"]} == {"classes"}
    assert f"{path}:2: field 'classes'" in body["message"]


# -- who sees what ---------------------------------------------------------------------------------


def test_ministries_see_only_their_own_report(sla_api: Api) -> None:
    build_world(sla_api)
    moi_admin = sla_api.create_user("moi-admin", "ministry-admin", "moi")
    moi_auditor = sla_api.create_user("moi-audit", "auditor", "moi")
    member = sla_api.create_user("dr-dev", "member", "disaster")
    nfa_admin = sla_api.create_user("nfa-admin", "ministry-admin", "nfa")
    root_auditor = sla_api.create_user("nao", "auditor", "gov")

    own = report(sla_api, token=moi_admin)
    assert (own["scope"], [m["ministry"] for m in own["ministries"]]) == ("moi", ["moi"])
    assert report(sla_api, token=moi_auditor, ministry="moi")["scope"] == "moi"
    assert [i["ministries"] for i in own["incidents"]] == [["moi"]] * len(own["incidents"])
    for ministry in ("motc", "nosuch"):  # another ministry looks like no ministry at all
        params = {"month": "2026-11", "ministry": ministry}
        body = error(sla_api.get("/v1/sla/report", params=params, token=moi_admin), 404,
                     "org.not_found")  # fmt: skip
        assert body["details"] == {"kind": "org", "id": ministry}
    params = {"month": "2026-11", "all": "true"}
    error(sla_api.get("/v1/sla/report", params=params, token=moi_admin), 403, "auth.forbidden")
    error(sla_api.get("/v1/sla/report", params={"month": "2026-11"}, token=member), 403,
          "auth.forbidden")  # fmt: skip
    error(sla_api.get("/v1/sla/report", params={"month": "2026-11"}, token=nfa_admin), 403,
          "auth.forbidden")  # fmt: skip
    everything = report(sla_api, token=root_auditor)  # root: every ministry by default
    assert (everything["scope"], {m["ministry"] for m in everything["ministries"]}) == (
        "all", {"moi", "motc"}
    )  # fmt: skip
    assert report(sla_api, token=root_auditor, ministry="motc")["scope"] == "motc"
    error(sla_api.get("/v1/sla/report", params={"month": "2026-11"}, token=None), 401)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"month": "2026-13"}, 422, "month"),
        ({"month": "11/2026"}, 422, "month"),
        ({}, 422, "month"),
        ({"month": "2026-11", "ministry": "NOT A CODE"}, 422, "ministry"),
        ({"month": "2026-11", "ministry": "nfa"}, 400, "ministry"),
        ({"month": "2026-11", "ministry": "moi", "all": "true"}, 400, "all"),
    ],
)
def test_bad_parameters_name_the_field(
    sla_api: Api, params: dict[str, str], status: int, field: str
) -> None:
    body = error(sla_api.get("/v1/sla/report", params=params), status)
    if status == 422:
        assert fields_named(body) == {field}
    else:
        assert body["details"]["field"] == field
        assert "value" in body["details"]


# -- maintenance windows ------------------------------------------------------------------------


def test_maintenance_windows_are_announced_by_admins_and_seen_by_those_affected(
    sla_api: Api,
) -> None:
    world = build_world(sla_api)
    sla_api.create_dc("khh-1", "Kaohsiung 1")
    moi_admin = sla_api.create_user("moi-admin", "ministry-admin", "moi")
    payload = {"datacentre": "khh-1", "starts_at": "2026-12-05T01:00:00+08:00",
               "ends_at": "2026-12-05T03:00:00+08:00", "reason": "cooling"}  # fmt: skip
    error(sla_api.post("/v1/maintenance-windows", json=payload, token=moi_admin), 403,
          "auth.forbidden")  # fmt: skip
    khh = sla_api.post("/v1/maintenance-windows", json=payload, expect=201).json()
    assert (khh["scope"], khh["datacentre"], khh["host_id"]) == ("dc", "khh-1", None)
    assert khh["starts_at"].startswith("2026-12-04T17:00:00")  # stored in UTC
    host = sla_api.post(
        "/v1/maintenance-windows",
        json={"host": world["web"]["host_name"], "starts_at": "2026-12-06T00:00:00Z",
              "ends_at": "2026-12-06T01:00:00Z", "reason": "firmware"},
        expect=201,
    ).json()  # fmt: skip
    assert (host["scope"], host["datacentre"], host["host_name"]) == (
        "host", "tpe-1", world["web"]["host_name"]
    )  # fmt: skip

    everything = sla_api.get("/v1/maintenance-windows", expect=200).json()
    assert [w["id"] for w in everything] == [world["window"]["id"], khh["id"], host["id"]]
    mine = sla_api.get("/v1/maintenance-windows", token=moi_admin, expect=200).json()
    assert [w["id"] for w in mine] == [world["window"]["id"], host["id"]]  # tpe-1 only
    error(sla_api.get(f"/v1/maintenance-windows/{khh['id']}", token=moi_admin), 404,
          "maintenance.not_found")  # fmt: skip
    december = sla_api.get("/v1/maintenance-windows", params={"month": "2026-12"}).json()
    assert [w["id"] for w in december] == [khh["id"], host["id"]]

    error(sla_api.delete(f"/v1/maintenance-windows/{host['id']}", token=moi_admin), 403)
    sla_api.delete(f"/v1/maintenance-windows/{host['id']}", expect=204)
    error(sla_api.get(f"/v1/maintenance-windows/{host['id']}"), 404, "maintenance.not_found")
    actions = [e["action"] for e in sla_api.audit() if e["action"].startswith("maintenance.")]
    assert actions.count("maintenance.create") == 4  # 3 made, 1 refused
    assert actions.count("maintenance.delete") == 2


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"ends_at": "2026-12-05T00:00:00Z"}, 400, "request.invalid", "ends_at"),
        ({"ends_at": "2026-12-25T00:00:00Z"}, 400, "request.invalid", "ends_at"),
        ({"starts_at": "2026-12-05T01:00:00"}, 422, "request.invalid", "starts_at"),
        ({"datacentre": "nowhere"}, 404, "dc.not_found", None),
        ({"datacentre": None, "host": "no-such-host"}, 404, "host.not_found", None),
        ({"datacentre": None}, 400, "request.invalid", "datacentre"),
        ({"reason": ""}, 422, "request.invalid", "reason"),
        ({"surprise": 1}, 422, "request.invalid", "surprise"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(
    sla_api: Api, change: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    payload = {"datacentre": "tpe-1", "starts_at": "2026-12-05T01:00:00Z",
               "ends_at": "2026-12-05T03:00:00Z", "reason": "cooling"} | change  # fmt: skip
    body = error(sla_api.post("/v1/maintenance-windows", json=payload), status, code)
    if status == 422:
        assert fields_named(body) == {field}
    elif field is not None:
        assert body["details"]["field"] == field
        if "limit" in body["details"]:
            given = datetime.fromisoformat(payload[field])
            assert datetime.fromisoformat(body["details"]["value"]) == given


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli(sla_api: Api, tmp_path: Path) -> CliHarness:
    build_world(sla_api)
    return CliHarness(sla_api, tmp_path / "home")


def test_cli_report_formats(cli: CliHarness) -> None:
    table = cli.run("sla", "report", "--month", "2026-11", "--all").stdout
    assert "SLA of every ministry in 2026-11" in table
    lines = rows(table)[:2]  # the first table: one line per ministry
    assert column(lines, 0) == ["moi", "motc"]
    assert column(lines, 9) == ["BREACHED", "met"]
    assert "Breaches:" in table
    assert "Host-failure incidents" in table
    assert "Worst instances" in table

    as_json = json.loads(cli.run("sla", "report", "-m", "2026-11", "-o", "json").stdout)
    as_yaml = yaml.safe_load(cli.run("sla", "report", "-m", "2026-11", "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json["scope"] == "all"

    parsed = list(csv.reader(io.StringIO(
        cli.run("sla", "report", "-m", "2026-11", "--ministry", "moi", "-o", "csv").stdout
    )))  # fmt: skip
    assert parsed[0][:4] == ["month", "ministry", "level", "org"]
    assert [row[2:4] for row in parsed[1:]] == [
        ["ministry", "moi"], ["agency", "nfa"], ["project", "disaster"]
    ]  # fmt: skip
    header = parsed[0]
    assert parsed[1][header.index("downtime_minutes")] == "75.000"
    assert parsed[1][header.index("attained")] == "false"

    page = cli.run("sla", "report", "-m", "2026-11", "-o", "html").stdout
    assert page.startswith("<!DOCTYPE html>")
    assert "BREACHED" in page
    assert "http" not in page.lower().replace("http-equiv", "")  # no CDN, no links out
    assert "<script" not in page


def test_cli_report_errors(cli: CliHarness) -> None:
    bad = cli.run("sla", "report", "--month", "2026-13", code=ExitCode.USAGE)
    assert "--month: month must be YYYY-MM" in bad.stderr
    both = cli.run("sla", "report", "-m", "2026-11", "--all", "--ministry", "moi",
                   code=ExitCode.USAGE)  # fmt: skip
    assert "either --ministry or --all" in both.stderr
    moi_admin = cli.api.create_user("moi-admin", "ministry-admin", "moi")
    hidden = cli.run("sla", "report", "-m", "2026-11", "--ministry", "motc",
                     code=ExitCode.NOT_FOUND, token=moi_admin)  # fmt: skip
    assert "org 'motc' not found" in hidden.stderr
    running = cli.run("sla", "report", "-m", "2026-12", token=moi_admin)
    assert "2026-12 is not over" in running.stderr


def test_cli_maintenance_commands(cli: CliHarness) -> None:
    made = json.loads(
        cli.run("maintenance", "create", "--dc", "tpe-1", "--start", "2026-12-05 01:00",
                "--end", "2026-12-05T03:00Z", "--reason", "UPS test", "-o", "json").stdout
    )  # fmt: skip
    assert made["starts_at"].startswith("2026-12-05T01:00:00")  # no zone given: UTC
    listed = cli.run("maintenance", "list", "--month", "2026-12").stdout
    assert column(rows(listed), 0) == [made["id"]]
    assert "UPS test" in listed
    shown = yaml.safe_load(cli.run("maintenance", "show", made["id"], "-o", "yaml").stdout)
    assert shown["reason"] == "UPS test"
    cli.run("maintenance", "delete", made["id"])
    assert "No maintenance windows" in cli.run("maintenance", "list", "-m", "2026-12").stderr
    missing = cli.run("maintenance", "create", "--start", "2026-12-05T01:00Z", "--end",
                      "2026-12-05T03:00Z", "--reason", "x", code=ExitCode.USAGE)  # fmt: skip
    assert "give --dc or --host" in missing.stderr
    garbled = cli.run("maintenance", "create", "--dc", "tpe-1", "--start", "tomorrow", "--end",
                      "2026-12-05T03:00Z", "--reason", "x", code=ExitCode.USAGE)  # fmt: skip
    assert "--start: not a date and time" in garbled.stderr
