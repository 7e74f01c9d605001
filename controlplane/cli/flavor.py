"""``govcloud flavor``: the instance sizes."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.crud import add_read_commands
from controlplane.cli.errors import validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.flavor import Flavor
from controlplane.schemas.catalog import FlavorCreate

app = typer.Typer(help="Flavors (instance sizes).", no_args_is_help=True)

COLUMNS: list[Column[Flavor]] = [
    Column("NAME", lambda f: f.name),
    Column("VCPUS", lambda f: f.vcpus, "right"),
    Column("RAM MIB", lambda f: f.ram_mib, "right"),
    Column("DISK GIB", lambda f: f.disk_gib, "right"),
    Column("DESCRIPTION", lambda f: f.description),
]


def _by_size(client: GovcloudClient) -> list[Flavor]:
    return sorted(client.list_flavors(), key=lambda f: (f.vcpus, f.ram_mib, f.disk_gib, f.name))


add_read_commands(
    app,
    noun="flavor",
    key="name",
    columns=COLUMNS,
    list_fn=_by_size,
    get_fn=GovcloudClient.get_flavor,
    delete_fn=GovcloudClient.delete_flavor,
    create_hint="govcloud flavor create NAME --vcpus N --ram-mib N --disk-gib N",
)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. m1.small")],
    vcpus: Annotated[int, typer.Option("--vcpus", help="virtual CPUs")],
    ram_mib: Annotated[int, typer.Option("--ram-mib", help="memory in MiB")],
    disk_gib: Annotated[int, typer.Option("--disk-gib", help="root disk in GiB")] = 0,
    description: Annotated[str, typer.Option("--description")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Add a flavor (platform-admins only)."""
    body = validated(
        FlavorCreate,
        name=name,
        vcpus=vcpus,
        ram_mib=ram_mib,
        disk_gib=disk_gib,
        description=description,
    )
    created = api(ctx).create_flavor(body)
    note(f"Created flavor {created.name} ({created.resources.describe()}).")
    emit_one(created, output)
