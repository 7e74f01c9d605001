"""``govcloud maintenance``: announced maintenance windows, which the SLA excludes.

Platform admins ``create`` and ``delete`` windows for a data centre (``--dc``) or one host
(``--host``); everyone can ``list`` and ``show`` the windows that affect them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.domain.maintenance import MaintenanceWindow
from controlplane.domain.metering import Month
from controlplane.schemas.sla import MaintenanceWindowCreate

app = typer.Typer(help="Maintenance windows (excluded from SLA downtime).", no_args_is_help=True)

COLUMNS: list[Column[MaintenanceWindow]] = [
    Column("ID", lambda w: w.id),
    Column("SCOPE", lambda w: w.scope),
    Column("DC", lambda w: w.datacentre),
    Column("HOST", lambda w: w.host_name),
    Column("START (UTC)", lambda w: w.starts_at),
    Column("END (UTC)", lambda w: w.ends_at),
    Column("REASON", lambda w: w.reason),
]


def parse_time(option: str, text: str) -> datetime:
    """ISO 8601 (``2026-11-20T02:00Z``, ``2026-11-20 02:00``); without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CliProblem(
            f"{option}: not a date and time: {text!r}",
            hint="use ISO 8601, e.g. 2026-11-20T02:00Z (UTC when no zone is given)",
        ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@app.command("create")
def create(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="ISO 8601, e.g. 2026-11-20T02:00Z")],
    end: Annotated[str, typer.Option("--end", help="ISO 8601, after --start")],
    reason: Annotated[str, typer.Option("--reason", help="shown to tenants, e.g. firmware")],
    dc: Annotated[str | None, typer.Option("--dc", help="every host of this data centre")] = None,
    host: Annotated[str | None, typer.Option("--host", help="one host (name or id)")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Announce a maintenance window (platform admins only)."""
    if dc is None and host is None:
        raise CliProblem("give --dc or --host", hint="--dc tpe-1 covers every host of tpe-1")
    body = validated(
        MaintenanceWindowCreate,
        datacentre=dc,
        host=host,
        starts_at=parse_time("--start", start),
        ends_at=parse_time("--end", end),
        reason=reason,
    )
    created = api(ctx).create_maintenance_window(body)
    note(f"Announced maintenance window {created.id}.")
    emit_one(created, output)


@app.command("list")
def list_windows(
    ctx: typer.Context,
    month: Annotated[
        str | None, typer.Option("--month", "-m", metavar="YYYY-MM", help="only this month")
    ] = None,
    dc: Annotated[str | None, typer.Option("--dc", help="only this data centre")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Windows that affect you, by start time."""
    if month is not None:
        try:
            month = str(Month.parse(month))
        except ValueError as exc:
            raise CliProblem(f"--month: {exc}", hint="e.g. --month 2026-11") from exc
    found = api(ctx).list_maintenance_windows(month=month, datacentre=dc)
    emit_list(found, COLUMNS, output, empty="No maintenance windows.")


@app.command("show")
def show(
    ctx: typer.Context,
    window_id: Annotated[str, typer.Argument(metavar="ID")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """One window."""
    emit_one(api(ctx).get_maintenance_window(window_id), output)


@app.command("delete")
def delete(ctx: typer.Context, window_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Withdraw a window (platform admins only); its time counts again."""
    api(ctx).delete_maintenance_window(window_id)
    note(f"Deleted maintenance window {window_id}.")
