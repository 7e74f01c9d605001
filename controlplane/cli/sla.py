"""``govcloud sla report``: monthly SLA attainment per ministry, for people and scripts.

The API computes everything (``GET /v1/sla/report``); this module only renders it:
``-o table`` (attainment per ministry, breaches, incidents, worst instances), ``json`` /
``yaml`` (the whole report), ``csv`` (one row per ministry, agency and project) and
``html`` (one self-contained page, see :mod:`controlplane.cli.sla_html`).
"""

from __future__ import annotations

import csv
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem
from controlplane.cli.output import Column, OutputFormat, dump, note, out_console, plain, table
from controlplane.cli.sla_html import render_html
from controlplane.domain.metering import Month
from controlplane.schemas.sla import (
    Availability,
    Incident,
    InstanceAvailability,
    MinistrySla,
    SlaReport,
)

app = typer.Typer(help="Service levels: availability, provisioning time, incidents.",
                  no_args_is_help=True)  # fmt: skip


class SlaFormat(StrEnum):
    """How the report is printed."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"
    HTML = "html"


CSV_COLUMNS: tuple[str, ...] = (
    "month",
    "ministry",
    "level",
    "org",
    "service_class",
    "target_availability_pct",
    "eligible_minutes",
    "excluded_minutes",
    "downtime_minutes",
    "availability_pct",
    "attained",
    "error_budget_remaining_minutes",
    "provisioning_p95_minutes",
    "failed_provisionings",
)


def pct(value: float | None) -> str:
    """An availability for people (``-`` when there was nothing to measure)."""
    return "-" if value is None else f"{value:.3f}"


def status(line: MinistrySla) -> str:
    """met / BREACHED / no data."""
    if line.breaches:
        return "BREACHED"
    return "no data" if line.attained is None else "met"


def _figures(a: Availability) -> list[str]:
    return [
        f"{a.eligible_minutes:.3f}",
        f"{a.excluded_minutes:.3f}",
        f"{a.downtime_minutes:.3f}",
        "" if a.availability_pct is None else f"{a.availability_pct:.4f}",
    ]


def write_csv(report: SlaReport) -> None:
    """A header row, then per ministry: its own row, then its agencies and projects."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in report.ministries:
        attained = "" if m.attained is None else str(m.attained).lower()
        p95 = m.provisioning.p95_minutes
        writer.writerow(
            [report.month, m.ministry, "ministry", m.ministry, m.target.service_class,
             f"{m.target.availability_pct:g}", *_figures(m.availability), attained,
             f"{m.error_budget.remaining_minutes:.3f}", "" if p95 is None else f"{p95:.3f}",
             m.provisioning.failed]
        )  # fmt: skip
        for org in m.orgs:
            writer.writerow(
                [report.month, m.ministry, org.kind, org.org, m.target.service_class,
                 f"{m.target.availability_pct:g}", *_figures(org), "", "", "", ""]
            )  # fmt: skip


MINISTRY_COLUMNS: list[Column[MinistrySla]] = [
    Column("MINISTRY", lambda m: m.ministry),
    Column("CLASS", lambda m: m.target.service_class),
    Column("TARGET %", lambda m: f"{m.target.availability_pct:g}", "right"),
    Column("AVAILABILITY %", lambda m: pct(m.availability.availability_pct), "right"),
    Column("DOWN MIN", lambda m: f"{m.availability.downtime_minutes:,.1f}", "right"),
    Column("BUDGET LEFT MIN", lambda m: f"{m.error_budget.remaining_minutes:,.1f}", "right"),
    Column(
        "P95 LAUNCH MIN",
        lambda m: (
            "-"
            if m.provisioning.p95_minutes is None
            else f"{m.provisioning.p95_minutes:.2f} / {m.target.provisioning_p95_minutes:g}"
        ),
        "right",
    ),
    Column("FAILED", lambda m: m.provisioning.failed, "right"),
    Column("INSTANCES", lambda m: m.instances, "right"),
    Column("STATUS", status),
]

INCIDENT_COLUMNS: list[Column[Incident]] = [
    Column("INCIDENT", lambda i: i.id),
    Column("DC", lambda i: i.datacentre),
    Column("START", lambda i: i.start),
    Column(
        "RECOVERED IN MIN",
        lambda i: f"{i.time_to_recover_minutes:,.1f}" + (" (ongoing)" if i.ongoing else ""),
        "right",
    ),
    Column("INSTANCES", lambda i: len(i.instances), "right"),
    Column("MINISTRIES", lambda i: i.ministries),
]

WORST_COLUMNS: list[Column[tuple[str, InstanceAvailability]]] = [
    Column("MINISTRY", lambda w: w[0]),
    Column("INSTANCE", lambda w: w[1].name),
    Column("PROJECT", lambda w: w[1].project),
    Column("AVAILABILITY %", lambda w: pct(w[1].availability_pct), "right"),
    Column("DOWN MIN", lambda w: f"{w[1].downtime_minutes:,.1f}", "right"),
    Column("OUTAGES", lambda w: w[1].outages, "right"),
]


def print_tables(report: SlaReport, console: Console | None = None) -> None:
    """The report for people."""
    console = console or out_console()
    who = "every ministry" if report.scope == "all" else report.scope
    so_far = "" if report.complete else f" (up to {report.as_of:%Y-%m-%d %H:%M} UTC)"
    console.print(
        table(report.ministries, MINISTRY_COLUMNS, title=f"SLA of {who} in {report.month}{so_far}")
    )
    total = report.total
    console.print(
        f"Overall: {pct(total.availability_pct)} % available "
        f"({total.downtime_minutes:,.1f} of {total.eligible_minutes - total.excluded_minutes:,.1f}"
        f" counted minutes down); {report.attained} of {len(report.ministries)} ministries met "
        f"their target, {report.breached} breached.",
        highlight=False,
    )
    breaches = [b for m in report.ministries for b in m.breaches]
    if breaches:
        console.print("Breaches:", style="bold")
        for b in breaches:
            caused = f" (incidents: {', '.join(b.incidents)})" if b.incidents else ""
            console.print(f"  - {b.message}{caused}", highlight=False, markup=False)
    if report.incidents:
        console.print(table(report.incidents, INCIDENT_COLUMNS, title="Host-failure incidents"))
    worst = [(m.ministry, w) for m in report.ministries for w in m.worst_instances]
    if worst:
        worst.sort(key=lambda w: -w[1].downtime_minutes)
        console.print(table(worst[:10], WORST_COLUMNS, title="Worst instances"))


@app.command("report")
def report(
    ctx: typer.Context,
    month: Annotated[
        str, typer.Option("--month", "-m", metavar="YYYY-MM", help="calendar month (UTC)")
    ],
    ministry: Annotated[
        str | None, typer.Option("--ministry", help="one ministry, e.g. moe (default: yours)")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="every ministry (root-scoped admins and auditors)")
    ] = False,
    output: Annotated[
        SlaFormat,
        typer.Option(
            "--output",
            "-o",
            help="table (default), json, yaml, csv (a row per ministry, agency and project) "
            "or html (a self-contained page)",
            case_sensitive=False,
        ),
    ] = SlaFormat.TABLE,
) -> None:
    """Monthly SLA: availability against each ministry's target, error budget left,
    provisioning times, breaches with their incidents and the worst instances.

    Availability counts the minutes a server should have been running (launched, and its
    tenant wanted it running) but was not, for platform reasons; announced maintenance
    windows and the tenant's own stops are excluded (docs/sla.md).
    """
    try:
        period = Month.parse(month)
    except ValueError as exc:
        raise CliProblem(f"--month: {exc}", hint="give the month as YYYY-MM, e.g. 2026-11") from exc
    if everything and ministry:
        raise CliProblem("give either --ministry or --all, not both",
                         hint="--all reports every ministry; --ministry one of them")  # fmt: skip
    found = api(ctx).sla_report(str(period), ministry=ministry, everything=everything)
    if output is SlaFormat.CSV:
        write_csv(found)
    elif output is SlaFormat.HTML:
        sys.stdout.write(render_html(found))
    elif output is SlaFormat.TABLE:
        print_tables(found)
    else:
        dump(plain(found), OutputFormat(output.value))
    if not found.complete:
        note(f"{found.month} is not over: figures count up to {found.as_of:%Y-%m-%d %H:%M} UTC.")
