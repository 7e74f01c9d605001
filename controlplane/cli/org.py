"""``govcloud org``: the organisation tree (Executive Yuan -> ministry -> agency -> project)."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.crud import add_read_commands
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.evacuation import EvacuationOverride
from controlplane.domain.org import Organisation
from controlplane.schemas.org import OrgCreate, OrgUpdate

app = typer.Typer(help="Organisations: ministries, agencies and projects.", no_args_is_help=True)


def _indented(org: Organisation) -> str:
    return "  " * org.path.count("/") + org.name


COLUMNS: list[Column[Organisation]] = [
    Column("CODE", lambda o: o.code),
    Column("NAME", _indented),
    Column("KIND", lambda o: o.kind),
    Column("PARENT", lambda o: o.parent),
    Column("PATH", lambda o: o.path),
]


def _tree(client: GovcloudClient) -> list[Organisation]:
    """Depth-first order, so the indented names read as a tree."""
    return sorted(client.list_orgs(), key=lambda o: o.path.split("/"))


add_read_commands(
    app,
    noun="org",
    key="code",
    columns=COLUMNS,
    list_fn=_tree,
    get_fn=GovcloudClient.get_org,
    create_hint="govcloud org create CODE --name NAME --parent PARENT",
)


@app.command("create")
def create(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="short code, e.g. moi, nfa, disaster-cloud")],
    name: Annotated[str, typer.Option("--name", help="display name")],
    parent: Annotated[str, typer.Option("--parent", help="parent's code: gov for a ministry, ...")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Add a ministry (parent gov), an agency (parent: a ministry) or a project."""
    created = api(ctx).create_org(validated(OrgCreate, code=code, name=name, parent=parent))
    note(f"Created {created.kind.value} {created.code} ({created.path}).")
    emit_one(created, output)


@app.command("update")
def update(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="the ministry's code, e.g. moe")],
    evacuation: Annotated[
        EvacuationOverride | None,
        typer.Option(
            "--evacuation",
            help=(
                "what happens to the ministry's instances on a host that goes down, in every "
                "data centre: none, restart-elsewhere, or inherit the data centre's policy"
            ),
        ),
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Change a ministry's settings (platform-admins only)."""
    if evacuation is None:
        raise CliProblem(
            "nothing to change", hint="give --evacuation none|restart-elsewhere|inherit"
        )
    changed = api(ctx).update_org(code, validated(OrgUpdate, evacuation_policy=evacuation))
    note(f"Updated {changed.code}: evacuation policy {changed.evacuation_policy.value}.")
    emit_one(changed, output)
