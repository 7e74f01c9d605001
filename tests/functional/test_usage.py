"""Metering through the API and the CLI, on SQLite and PostgreSQL (``seeded_url``).

Instances are driven through their lifecycle by a simulated agent on a fake clock that
does not tick by itself (it moves only when the test advances it), so every claim
interval, and so every figure of the report, is exact. The standard seed has
gov -> motc -> thb -> traffic and gov -> moi -> nfa -> disaster.

The world built by :func:`build_world` (times UTC):

- ``web`` (m1.medium: 2 vCPU, 4 GiB, 40 GiB) in traffic, placed 2026-10-31 18:00, stopped
  on 11-02 (a stopped server keeps its claim, so it is still charged), never deleted;
- ``db`` (m1.large: 4 vCPU, 8 GiB, 80 GiB) in disaster, placed 11-01 00:00, deletion asked
  11-04 00:00 and confirmed by the agent 11-04 01:00 (73 h: the claim lasts until the host
  is given back);
- ``big`` in disaster: never fits, stays PENDING (no claim, never charged), deleted;
- the clock then stands at 2026-12-01 10:00.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from controlplane.cli.errors import ExitCode
from tests.api_helper import Agent, Api, FakeClock, error, fields_named
from tests.functional.cli_helpers import CliHarness, column, rows

T0 = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

PRICES = """\
currency: TWD
instance_hour: "0.50"
vcpu_hour: "0.85"
ram_gib_hour: "0.25"
disk_gib_month: "3.20"
"""

#: November, exactly (disk: 80 GiB x 73 h / 720 h = 8.1111...).
NOV_DISASTER = {
    "ministry": "moi",
    "agency": "nfa",
    "project": "disaster",
    "instances": 1,
    "instance_hours": 73.0,
    "vcpu_hours": 292.0,
    "ram_gib_hours": 584.0,
    "disk_gib_months": 8.111111,
    "fees": None,
}
NOV_TRAFFIC = {
    "ministry": "motc",
    "agency": "thb",
    "project": "traffic",
    "instances": 1,
    "instance_hours": 720.0,
    "vcpu_hours": 1440.0,
    "ram_gib_hours": 2880.0,
    "disk_gib_months": 40.0,
    "fees": None,
}


@pytest.fixture
def metered(seeded_url: str, api_factory: Callable[..., Api]) -> Api:
    """The standard seed, with a clock that stands still at T0 until advanced."""
    return api_factory(seeded_url, migrate=False, clock=FakeClock(T0, tick=timedelta(0)))


def advance_to(api: Api, when: datetime) -> None:
    now = api.clock()
    assert when >= now
    api.clock.advance(when - now)


def build_world(api: Api) -> dict[str, Any]:
    """The instances of the module docstring; returns their ids and the agent."""
    api.create_flavor("x.huge", 256, 1024 * 1024, 10)
    agent = api.register_host("tpe-h01", vcpus=64, ram_mib=262144, disk_gib=4000)
    web = api.create_instance("web", project="traffic", flavor="m1.medium")["id"]
    agent.converge()
    assert api.instance(web)["state"] == "RUNNING"

    advance_to(api, datetime(2026, 11, 1, tzinfo=UTC))
    db = api.create_instance("db", project="disaster", flavor="m1.large")["id"]
    big = api.create_instance("big", project="disaster", flavor="x.huge")
    assert big["state"] == "PENDING"
    agent.converge()

    advance_to(api, datetime(2026, 11, 2, tzinfo=UTC))
    api.act(web, "stop")
    agent.converge()
    assert api.instance(web)["state"] == "STOPPED"

    advance_to(api, datetime(2026, 11, 4, tzinfo=UTC))
    api.act(db, "delete")
    advance_to(api, datetime(2026, 11, 4, 1, tzinfo=UTC))
    agent.converge()  # the agent confirms: the claim ends now
    assert api.instance(db)["state"] == "DELETED"
    assert api.act(big["id"], "delete")["state"] == "DELETED"

    advance_to(api, NOW)
    return {"agent": agent, "web": web, "db": db}


def usage(api: Api, month: str, *, org: str | None = None, token: str | None = None) -> Any:
    params = {"month": month} | ({"org": org} if org else {})
    kwargs: dict[str, Any] = {"token": token} if token else {}
    return api.get("/v1/usage", params=params, expect=200, **kwargs).json()


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the API --------------------------------------------------------------------------------


def test_a_month_is_metered_exactly_from_placement_to_release(metered: Api) -> None:
    build_world(metered)
    nov = usage(metered, "2026-11")
    assert (nov["month"], nov["org"], nov["org_kind"], nov["org_path"]) == (
        "2026-11",
        "gov",
        "root",
        "gov",
    )
    assert when(nov["start"]) == datetime(2026, 11, 1, tzinfo=UTC)
    assert when(nov["end"]) == datetime(2026, 12, 1, tzinfo=UTC)
    assert when(nov["as_of"]) == datetime(2026, 12, 1, tzinfo=UTC)
    assert (nov["complete"], nov["hours_in_month"]) == (True, 720)
    assert nov["lines"] == [NOV_DISASTER, NOV_TRAFFIC]
    moi, motc = nov["totals"]
    assert (moi["ministry"], moi["projects"], moi["instances"], moi["vcpu_hours"]) == (
        "moi",
        1,
        1,
        292.0,
    )
    assert (motc["ministry"], motc["instance_hours"], motc["disk_gib_months"]) == (
        "motc",
        720.0,
        40.0,
    )
    total = nov["total"]
    assert total["ministry"] is None
    assert (total["projects"], total["instances"], total["instance_hours"]) == (2, 2, 793.0)
    assert total["disk_gib_months"] == 48.111111
    assert total["fees"] is None  # the API meters; prices are applied by the caller


def test_neighbouring_months_get_only_their_own_hours(metered: Api) -> None:
    build_world(metered)
    oct_ = usage(metered, "2026-10")
    (line,) = oct_["lines"]  # web's first 6 hours; db started in November
    assert (line["project"], line["instance_hours"], line["vcpu_hours"]) == ("traffic", 6.0, 12.0)
    assert line["ram_gib_hours"] == 24.0
    assert line["disk_gib_months"] == 0.322581  # 40 GiB x 6 h / 744 h
    assert (oct_["complete"], oct_["hours_in_month"]) == (True, 744)

    dec = usage(metered, "2026-12")  # still running: up to now (10 h)
    (line,) = dec["lines"]
    assert (line["project"], line["instance_hours"], line["vcpu_hours"]) == ("traffic", 10.0, 20.0)
    assert line["disk_gib_months"] == 0.537634  # 40 x 10 / 744: still over the whole month
    assert dec["complete"] is False
    assert when(dec["as_of"]) == NOW

    for month in ("2026-09", "2027-01"):  # before anything, and still to come
        empty = usage(metered, month)
        assert empty["lines"] == []
        assert empty["totals"] == []
        assert (empty["total"]["projects"], empty["total"]["instance_hours"]) == (0, 0.0)
    assert usage(metered, "2027-01")["complete"] is False


def test_a_pending_instance_is_charged_only_once_placed(metered: Api) -> None:
    api = metered
    api.register_host("tpe-h01", vcpus=4, ram_mib=8192, disk_gib=100)
    api.create_flavor("x.big", 8, 65536, 100)
    waiting = api.create_instance("waits", project="disaster", flavor="x.big")
    assert waiting["state"] == "PENDING"
    advance_to(api, T0 + 5 * HOUR)  # 23:00, still October
    big = api.register_host("tpe-h02", vcpus=64, ram_mib=262144, disk_gib=4000)
    assert api.place_pending() == 1  # capacity appeared: placed (and charged) from now
    big.converge()
    advance_to(api, T0 + 8 * HOUR)  # 3 h later, 02:00 on 1 November

    (october,) = usage(api, "2026-10")["lines"]
    assert (october["instance_hours"], october["vcpu_hours"]) == (1.0, 8.0)
    assert october["ram_gib_hours"] == 64.0
    (november,) = usage(api, "2026-11")["lines"]
    assert (november["instance_hours"], november["vcpu_hours"]) == (2.0, 16.0)


def test_callers_see_only_their_subtree(metered: Api) -> None:
    world = build_world(metered)
    motc_admin = metered.create_user("motc-admin", "ministry-admin", "motc")
    traffic_member = metered.create_user("traffic-dev", "member", "traffic")
    moi_auditor = metered.create_user("moi-audit", "auditor", "moi")
    root_auditor = metered.create_user("nao", "auditor", "gov")

    mine = usage(metered, "2026-11", token=motc_admin)  # default: the caller's own node
    assert (mine["org"], mine["org_kind"], mine["org_path"]) == ("motc", "ministry", "gov/motc")
    assert mine["lines"] == [NOV_TRAFFIC]
    assert [t["ministry"] for t in mine["totals"]] == ["motc"]
    assert usage(metered, "2026-11", org="thb", token=motc_admin)["lines"] == [NOV_TRAFFIC]
    assert usage(metered, "2026-11", token=traffic_member)["lines"] == [NOV_TRAFFIC]
    assert usage(metered, "2026-11", token=moi_auditor)["lines"] == [NOV_DISASTER]
    everything = usage(metered, "2026-11", token=root_auditor)
    assert everything["lines"] == [NOV_DISASTER, NOV_TRAFFIC]
    assert usage(metered, "2026-11", org="motc")["lines"] == [NOV_TRAFFIC]  # admin narrows

    # Another ministry, an ancestor and a code that does not exist all look the same.
    for org in ("moi", "disaster", "gov", "nosuch"):
        body = error(
            metered.get("/v1/usage", params={"month": "2026-11", "org": org}, token=motc_admin),
            404,
            "org.not_found",
        )
        assert body["details"] == {"kind": "org", "id": org}
    error(
        metered.get("/v1/usage", params={"month": "2026-11", "org": "thb"}, token=moi_auditor),
        404,
        "org.not_found",
    )

    agent: Agent = world["agent"]
    response = metered.client.get("/v1/usage", params={"month": "2026-11"}, headers=agent.headers)
    error(response, 403, "auth.forbidden")
    error(metered.get("/v1/usage", params={"month": "2026-11"}, token=None), 401)


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"month": "2026-13"}, {"month"}),
        ({"month": "11-2026"}, {"month"}),
        ({"month": "2026-1"}, {"month"}),
        ({}, {"month"}),
        ({"month": "2026-11", "org": "NOT A CODE"}, {"org"}),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    metered: Api, params: dict[str, str], fields: set[str]
) -> None:
    body = error(metered.get("/v1/usage", params=params), 422, "request.invalid")
    assert fields_named(body) == fields
    if params.get("month") == "2026-13":
        assert "month 01-12" in body["message"]


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli(metered: Api, tmp_path: Path) -> CliHarness:
    build_world(metered)
    return CliHarness(metered, tmp_path / "home")


@pytest.fixture
def prices_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES, encoding="utf-8")
    return path


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


USAGE_HEADER = [
    "month",
    "ministry",
    "agency",
    "project",
    "instances",
    "instance_hours",
    "vcpu_hours",
    "ram_gib_hours",
    "disk_gib_months",
]
FEE_HEADER = [
    "currency",
    "fee_instance_hours",
    "fee_vcpu_hours",
    "fee_ram_gib_hours",
    "fee_disk_gib_months",
    "fee_total",
]


def test_cli_csv_has_a_header_and_one_line_per_project_with_fees(
    cli: CliHarness, prices_file: Path
) -> None:
    plain = parse_csv(cli.run("usage", "report", "--month", "2026-11", "-o", "csv").stdout)
    assert plain == [
        USAGE_HEADER,
        ["2026-11", "moi", "nfa", "disaster", "1", "73.000000", "292.000000", "584.000000",
         "8.111111"],
        ["2026-11", "motc", "thb", "traffic", "1", "720.000000", "1440.000000", "2880.000000",
         "40.000000"],
    ]  # fmt: skip

    priced = parse_csv(
        cli.run(
            "usage", "report", "--month", "2026-11", "--prices", str(prices_file), "-o", "csv"
        ).stdout
    )
    assert priced[0] == USAGE_HEADER + FEE_HEADER
    # 73 x 0.50 = 36.50; 292 x 0.85 = 248.20; 584 x 0.25 = 146.00;
    # 8.111111 x 3.20 = 25.9555552 -> 25.96; total 456.66
    assert priced[1][9:] == ["TWD", "36.50", "248.20", "146.00", "25.96", "456.66"]
    # a whole month of m1.medium: 360 + 1224 + 720 + 128
    assert priced[2][9:] == ["TWD", "360.00", "1224.00", "720.00", "128.00", "2432.00"]
    assert [row[:9] for row in priced] == plain


def test_cli_json_for_one_ministry_with_fees_and_totals(cli: CliHarness, prices_file: Path) -> None:
    motc_admin = cli.api.create_user("motc-admin", "ministry-admin", "motc")
    result = cli.run(
        "usage",
        "report",
        "--month",
        "2026-11",
        "--ministry",
        "motc",
        "--prices",
        str(prices_file),
        "-o",
        "json",
        token=motc_admin,
    )
    report = json.loads(result.stdout)
    assert (report["org"], report["complete"]) == ("motc", True)
    (line,) = report["lines"]
    assert {k: v for k, v in line.items() if k != "fees"} == {
        k: v for k, v in NOV_TRAFFIC.items() if k != "fees"
    }
    assert line["fees"] == {
        "currency": "TWD",
        "instance_hours": 360.0,
        "vcpu_hours": 1224.0,
        "ram_gib_hours": 720.0,
        "disk_gib_months": 128.0,
        "total": 2432.0,
    }
    (motc,) = report["totals"]
    assert motc["fees"]["total"] == 2432.0
    assert report["total"]["fees"]["total"] == 2432.0
    assert report["prices"]["currency"] == "TWD"
    assert Decimal(str(report["prices"]["vcpu_hour"])) == Decimal("0.85")

    unpriced = json.loads(cli.run("usage", "report", "-m", "2026-11", "-o", "json").stdout)
    assert unpriced["prices"] is None
    assert [line["fees"] for line in unpriced["lines"]] == [None, None]


def test_cli_table_for_people(cli: CliHarness, prices_file: Path) -> None:
    result = cli.run("usage", "report", "--month", "2026-11", "--prices", str(prices_file))
    assert "Usage of gov (root) in 2026-11" in result.stdout
    assert "FEE (TWD)" in result.stdout
    lines = rows(result.stdout)
    assert column(lines, 2)[:2] == ["disaster", "traffic"]
    assert column(lines, 0)[2:] == ["moi", "motc", "ALL"]  # totals per ministry, then all
    assert column(lines, -1) == ["456.66", "2,432.00", "456.66", "2,432.00", "2,888.66"]

    running = cli.run("usage", "report", "--month", "2026-12")
    assert "2026-12 is not over" in running.stderr
    assert "2026-12-01 10:00" in running.stderr
    empty = cli.run("usage", "report", "--month", "2027-01", "--org", "motc")
    assert "No usage in gov/motc (ministry) in 2027-01" in empty.stderr


def test_cli_errors_say_what_to_fix(cli: CliHarness, prices_file: Path, tmp_path: Path) -> None:
    bad_month = cli.run("usage", "report", "--month", "2026-13", code=ExitCode.USAGE)
    assert "--month: month must be YYYY-MM" in bad_month.stderr
    both = cli.run(
        "usage", "report", "-m", "2026-11", "--ministry", "motc", "--org", "thb",
        code=ExitCode.USAGE,
    )  # fmt: skip
    assert "either --ministry or --org" in both.stderr
    agency = cli.run("usage", "report", "-m", "2026-11", "--ministry", "thb", code=ExitCode.USAGE)
    assert "'thb' is an agency, not a ministry" in agency.stderr
    assert "--org thb" in agency.stderr

    motc_admin = cli.api.create_user("motc-admin", "ministry-admin", "motc")
    hidden = cli.run(
        "usage", "report", "-m", "2026-11", "--ministry", "moi",
        code=ExitCode.NOT_FOUND, token=motc_admin,
    )  # fmt: skip
    assert "org 'moi' not found" in hidden.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(PRICES.replace('"0.85"', "-1") + "discount: 5\n", encoding="utf-8")
    invalid = cli.run(
        "usage", "report", "-m", "2026-11", "--prices", str(broken), "-o", "csv",
        code=ExitCode.USAGE,
    )  # fmt: skip
    assert invalid.stdout == ""  # nothing half-written
    assert f"{broken}:3: field 'vcpu_hour'" in invalid.stderr
    assert f"{broken}:6: field 'discount'" in invalid.stderr
    missing = cli.run(
        "usage", "report", "-m", "2026-11", "--prices", str(tmp_path / "nope.yaml"),
        code=ExitCode.USAGE,
    )  # fmt: skip
    assert "cannot read" in missing.stderr
    assert prices_file.exists()
