"""``govcloud dc``: the consolidated data centres that hosts live in."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli import consolidate, fleet
from controlplane.cli.context import api
from controlplane.cli.crud import add_read_commands
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.datacentre import DataCentre, DataCentreState, PlacementPolicy
from controlplane.domain.evacuation import EvacuationPolicy
from controlplane.schemas.catalog import DataCentreCreate, DataCentreUpdate

app = typer.Typer(help="Data centres.", no_args_is_help=True)
EvacuationOpt = Annotated[
    EvacuationPolicy | None,
    typer.Option(
        "--evacuation",
        help="what happens to instances of a host that goes down: none or restart-elsewhere",
    ),
]

COLUMNS: list[Column[DataCentre]] = [
    Column("CODE", lambda d: d.code),
    Column("NAME", lambda d: d.name),
    Column("LOCATION", lambda d: d.location),
    Column("STATE", lambda d: d.state),
    Column("POLICY", lambda d: d.placement_policy),
    Column("EVACUATION", lambda d: d.evacuation_policy),
]

add_read_commands(
    app,
    noun="dc",
    key="code",
    columns=COLUMNS,
    list_fn=GovcloudClient.list_datacentres,
    get_fn=GovcloudClient.get_datacentre,
    delete_fn=GovcloudClient.delete_datacentre,
    create_hint="govcloud dc create CODE --name NAME",
)

CodeArg = Annotated[str, typer.Argument(metavar="CODE", help="short code, e.g. tpe-1")]
app.command("evacuate")(fleet.evacuate)
app.command("consolidate")(consolidate.consolidate)
app.command("consolidations")(consolidate.history)


@app.command("create")
def create(
    ctx: typer.Context,
    code: CodeArg,
    name: Annotated[str, typer.Option("--name", help="display name, e.g. Taipei 1")],
    location: Annotated[str, typer.Option("--location", help="city or site")] = "",
    policy: Annotated[
        PlacementPolicy | None,
        typer.Option("--policy", help="default placement policy: pack or spread"),
    ] = None,
    evacuation: EvacuationOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Add a data centre (platform-admins only)."""
    body = validated(
        DataCentreCreate,
        code=code,
        name=name,
        location=location,
        placement_policy=policy,
        evacuation_policy=evacuation,
    )
    created = api(ctx).create_datacentre(body)
    note(
        f"Created data centre {created.code}. Enrol hosts with `govcloud host token create "
        f"--dc {created.code}`."
    )
    emit_one(created, output)


@app.command("update")
def update(
    ctx: typer.Context,
    code: CodeArg,
    name: Annotated[str | None, typer.Option("--name", help="new display name")] = None,
    location: Annotated[str | None, typer.Option("--location", help="new location")] = None,
    state: Annotated[
        DataCentreState | None,
        typer.Option("--state", help="draining stops new placements; retired closes it"),
    ] = None,
    policy: Annotated[
        PlacementPolicy | None,
        typer.Option("--policy", help="default placement policy: pack or spread"),
    ] = None,
    evacuation: EvacuationOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Change a data centre's name, location, state, placement or evacuation policy."""
    if all(v is None for v in (name, location, state, policy, evacuation)):
        raise CliProblem(
            "nothing to change",
            hint="give at least one of --name, --location, --state, --policy, --evacuation",
        )
    body = validated(
        DataCentreUpdate,
        name=name,
        location=location,
        state=state,
        placement_policy=policy,
        evacuation_policy=evacuation,
    )
    emit_one(api(ctx).update_datacentre(code, body), output)
