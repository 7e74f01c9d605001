"""``govcloud server group``: server groups (affinity rules for a project's servers)."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, ExitCode, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.server_group import GroupPolicy, ServerGroup
from controlplane.schemas.server_group import ServerGroupCreate

app = typer.Typer(help="Server groups: affinity and anti-affinity rules.", no_args_is_help=True)

COLUMNS: list[Column[ServerGroup]] = [
    Column("ID", lambda g: g.id),
    Column("NAME", lambda g: g.name),
    Column("PROJECT", lambda g: g.project),
    Column("POLICY", lambda g: g.policy),
    Column("MAX/HOST", lambda g: g.max_per_host),
    Column("MEMBERS", lambda g: len(g.members)),
]

GroupRef = Annotated[str, typer.Argument(metavar="GROUP", help="id, or name if unambiguous")]


def resolve_group(client: GovcloudClient, ref: str, project: str | None = None) -> str:
    """The id of the group ``ref`` names (an id, or a name unique in the caller's scope)."""
    groups = client.list_server_groups(project=project)
    if any(g.id == ref for g in groups):
        return ref
    matches = [g for g in groups if g.name == ref]
    if not matches:
        raise CliProblem(
            f"no server group {ref!r} in your scope",
            hint="list them with `govcloud server group list`",
            code=ExitCode.NOT_FOUND,
        )
    if len(matches) > 1:
        ids = ", ".join(f"{g.id} ({g.project})" for g in matches)
        raise CliProblem(f"{len(matches)} groups are named {ref!r}: {ids}", hint="use --project")
    return matches[0].id


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. web")],
    project: Annotated[str, typer.Option("--project", "-p", help="project code")],
    policy: Annotated[GroupPolicy, typer.Option("--policy", help="the placement rule")],
    max_per_host: Annotated[
        int | None, typer.Option("--max-per-host", help="anti-affinity: members per host")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Create a server group; servers join it with `server create --group NAME`."""
    body = validated(
        ServerGroupCreate, name=name, project=project, policy=policy, max_per_host=max_per_host
    )
    created = api(ctx).create_server_group(body)
    note(f"Created server group {created.name} ({created.id}): {created.policy.value}.")
    emit_one(created, output)


@app.command("list")
def list_groups(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="only this project")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Server groups in your scope."""
    emit_list(
        api(ctx).list_server_groups(project=project),
        COLUMNS,
        output,
        empty="No server groups. Create one: `govcloud server group create NAME -p PROJECT "
        "--policy anti-affinity`.",
    )


@app.command("show")
def show(ctx: typer.Context, group: GroupRef, output: OutputOpt = OutputFormat.TABLE) -> None:
    """One group with its members."""
    client = api(ctx)
    emit_one(client.get_server_group(resolve_group(client, group)), output)


@app.command("delete")
def delete(ctx: typer.Context, group: GroupRef) -> None:
    """Delete an empty group (refused while it has live members)."""
    client = api(ctx)
    group_id = resolve_group(client, group)
    client.delete_server_group(group_id)
    note(f"Deleted server group {group}.")
