"""``govcloud usage report``: metered usage per project for one month, and its fees.

The API meters (instance-hours, vCPU-hours, RAM GiB-hours, disk GiB-months per project,
see :mod:`controlplane.domain.metering`); with ``--prices FILE`` this command turns the
usage into fees locally, with the same pure functions, so a ministry can price its own
usage with any price table. ``-o csv`` writes one line per project with a header row (fee
columns added when priced); ``-o json|yaml`` the whole report with per-ministry totals.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem
from controlplane.cli.output import Column, OutputFormat, dump, note, out_console, plain, table
from controlplane.domain.metering import (
    DIMENSIONS,
    Month,
    PriceTable,
    PriceTableError,
    UsageLine,
    UsageTotal,
    fees,
    grand_total,
    load_price_table,
    totals,
)
from controlplane.domain.org import OrgKind
from controlplane.schemas.usage import UsageReport

app = typer.Typer(
    help="Usage and fees (showback): what each project used, per month.",
    no_args_is_help=True,
)


class UsageFormat(StrEnum):
    """How the report is printed."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"


#: CSV columns, in order; the fee columns follow when a price table is given.
CSV_USAGE_COLUMNS: tuple[str, ...] = ("month", "ministry", "agency", "project", "instances")
CSV_FEE_COLUMNS: tuple[str, ...] = (
    "currency",
    *(f"fee_{dim}" for dim in DIMENSIONS),
    "fee_total",
)


def _quantity(value: Decimal) -> str:
    return f"{value:.6f}"


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _read_prices(path: Path) -> PriceTable:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliProblem(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise CliProblem(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="check the path; docs/examples/prices-2026.yaml is an example price table",
        ) from exc
    try:
        return load_price_table(text, str(path))
    except PriceTableError as exc:
        raise CliProblem(
            exc.message,
            hint="fix the file; it needs currency, instance_hour, vcpu_hour, ram_gib_hour "
            "and disk_gib_month (see docs/examples/prices-2026.yaml)",
        ) from exc


def priced(report: UsageReport, prices: PriceTable) -> UsageReport:
    """``report`` with fees on every line and total (``prices``' currency)."""
    lines = fees(report.lines, prices)
    return report.model_copy(
        update={
            "lines": lines,
            "totals": totals(lines),
            "total": grand_total(lines, prices.currency),
        }
    )


# -- rendering ------------------------------------------------------------------------------


def write_csv(report: UsageReport, *, with_fees: bool) -> None:
    """One row per project, after a header row, on stdout."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*CSV_USAGE_COLUMNS, *DIMENSIONS, *(CSV_FEE_COLUMNS if with_fees else ())])
    for line in report.lines:
        row = [report.month, line.ministry, line.agency, line.project, str(line.instances)]
        row += [_quantity(getattr(line, dim)) for dim in DIMENSIONS]
        if with_fees and line.fees is not None:
            row += [line.fees.currency]
            row += [_money(getattr(line.fees, dim)) for dim in DIMENSIONS]
            row += [_money(line.fees.total)]
        writer.writerow(row)


def _amount(value: Decimal) -> str:
    """A quantity for people: two decimals are plenty on screen (CSV/JSON keep six)."""
    return f"{value:,.2f}"


def _fee(item: UsageLine | UsageTotal) -> str:
    return "-" if item.fees is None else f"{item.fees.total:,.2f}"


_QUANTITY_COLUMNS: list[tuple[str, str]] = [
    ("INSTANCE-H", "instance_hours"),
    ("VCPU-H", "vcpu_hours"),
    ("RAM GIB-H", "ram_gib_hours"),
    ("DISK GIB-MO", "disk_gib_months"),
]


def _reader(dim: str) -> Callable[[UsageLine | UsageTotal], str]:
    return lambda item: _amount(getattr(item, dim))


def _quantity_columns() -> list[Column[Any]]:
    return [Column(header, _reader(dim), "right") for header, dim in _QUANTITY_COLUMNS]


def _line_columns(currency: str | None) -> list[Column[UsageLine]]:
    columns: list[Column[UsageLine]] = [
        Column("MINISTRY", lambda line: line.ministry),
        Column("AGENCY", lambda line: line.agency),
        Column("PROJECT", lambda line: line.project),
        Column("INSTANCES", lambda line: line.instances, "right"),
        *_quantity_columns(),
    ]
    if currency:
        columns.append(Column(f"FEE ({currency})", _fee, "right"))
    return columns


def _total_columns(currency: str | None) -> list[Column[UsageTotal]]:
    columns: list[Column[UsageTotal]] = [
        Column("MINISTRY", lambda t: t.ministry or "ALL"),
        Column("PROJECTS", lambda t: t.projects, "right"),
        Column("INSTANCES", lambda t: t.instances, "right"),
        *_quantity_columns(),
    ]
    if currency:
        columns.append(Column(f"FEE ({currency})", _fee, "right"))
    return columns


def _print_tables(report: UsageReport, currency: str | None) -> None:
    where = f"{report.org_path} ({report.org_kind.value})"
    if not report.lines:
        note(f"No usage in {where} in {report.month}.")
        return
    console = out_console()
    console.print(
        table(report.lines, _line_columns(currency), title=f"Usage of {where} in {report.month}")
    )
    sums: Sequence[UsageTotal] = [*report.totals, report.total]
    console.print(table(sums, _total_columns(currency), title="Totals per ministry"))


# -- the command ------------------------------------------------------------------------------


@app.command("report")
def report(
    ctx: typer.Context,
    month: Annotated[
        str, typer.Option("--month", "-m", metavar="YYYY-MM", help="calendar month (UTC)")
    ],
    ministry: Annotated[
        str | None, typer.Option("--ministry", help="only this ministry, e.g. motc")
    ] = None,
    org: Annotated[
        str | None,
        typer.Option("--org", help="only this ministry, agency or project (default: your scope)"),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            metavar="FILE",
            help="price table (YAML) to turn usage into fees, e.g. docs/examples/prices-2026.yaml",
        ),
    ] = None,
    output: Annotated[
        UsageFormat,
        typer.Option(
            "--output",
            "-o",
            help="table (default, for people), csv (one line per project), json or yaml",
            case_sensitive=False,
        ),
    ] = UsageFormat.TABLE,
) -> None:
    """Usage per project in one month: instance-hours, vCPU-hours, RAM GiB-hours and disk
    GiB-months, with totals per ministry; fees too with --prices.

    Usage accrues while a server holds its place on a host: from placement until it is
    deleted, whether running or stopped (PENDING servers cost nothing). A month still
    running is reported up to now. You see only your own part of the organisation tree.
    """
    try:
        period = Month.parse(month)
    except ValueError as exc:
        raise CliProblem(f"--month: {exc}", hint="give the month as YYYY-MM, e.g. 2026-11") from exc
    if ministry and org:
        raise CliProblem(
            "give either --ministry or --org, not both",
            hint="--ministry motc is the same as --org motc, checked to be a ministry",
        )
    table_of_prices = _read_prices(prices) if prices is not None else None
    found = api(ctx).usage_report(str(period), ministry or org)
    if ministry and found.org_kind is not OrgKind.MINISTRY:
        kind = found.org_kind.value
        article = "an" if kind[0] in "aeiou" else "a"
        raise CliProblem(
            f"{ministry!r} is {article} {kind}, not a ministry ({found.org_path})",
            hint=f"use --org {ministry} to report on it",
        )
    if table_of_prices is not None:
        found = priced(found, table_of_prices)
    currency = table_of_prices.currency if table_of_prices else None
    if output is UsageFormat.CSV:
        write_csv(found, with_fees=table_of_prices is not None)
    elif output is UsageFormat.TABLE:
        _print_tables(found, currency)
    else:
        data = plain(found)
        data["prices"] = plain(table_of_prices) if table_of_prices else None
        dump(data, OutputFormat(output.value))
    if not found.complete:
        note(
            f"{found.month} is not over: usage is counted up to {found.as_of:%Y-%m-%d %H:%M} "
            "UTC and will still grow."
        )
