"""``govcloud audit list``: the append-only record of every mutating call in your scope."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list
from controlplane.domain.audit import AuditEvent

app = typer.Typer(help="The audit trail (auditors and admins).", no_args_is_help=True)

COLUMNS: list[Column[AuditEvent]] = [
    Column("ID", lambda e: e.id, "right"),
    Column("TIME", lambda e: e.time),
    Column("ACTOR", lambda e: f"{e.actor} ({e.actor_role})"),
    Column("ACTION", lambda e: e.action),
    Column("TARGET", lambda e: f"{e.target_type} {e.target_id}".strip()),
    Column("ORGANISATION", lambda e: e.organisation),
    Column("OUTCOME", lambda e: f"{e.outcome} {e.status_code}"),
    Column("REQUEST ID", lambda e: e.request_id),
]


@app.command("list")
def list_events(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="at most this many")] = 50,
    before: Annotated[
        int | None, typer.Option("--before", help="only events older than this id (paging)")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="only this user or host")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="only this action, e.g. instance.create")
    ] = None,
    request_id: Annotated[str | None, typer.Option("--request-id")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Newest first. Page back with --before <smallest id shown>."""
    events = api(ctx).list_audit(
        limit=limit, before=before, actor=actor, action=action, request_id=request_id
    )
    emit_list(events, COLUMNS, output, empty="No audit events match.")
