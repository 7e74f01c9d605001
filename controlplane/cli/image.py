"""``govcloud image``: what instances boot from (paths are local to each host)."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.crud import add_read_commands
from controlplane.cli.errors import validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.image import Image, ImageFormat
from controlplane.schemas.catalog import ImageCreate

app = typer.Typer(help="Images.", no_args_is_help=True)

COLUMNS: list[Column[Image]] = [
    Column("NAME", lambda i: i.name),
    Column("FORMAT", lambda i: i.format),
    Column("SIZE MIB", lambda i: i.size_mib, "right"),
    Column("MIN RAM MIB", lambda i: i.min_ram_mib, "right"),
    Column("MIN DISK GIB", lambda i: i.min_disk_gib, "right"),
    Column("PATH", lambda i: i.path or i.kernel_path),
    Column("DESCRIPTION", lambda i: i.description),
]

add_read_commands(
    app,
    noun="image",
    key="name",
    columns=COLUMNS,
    list_fn=GovcloudClient.list_images,
    get_fn=GovcloudClient.get_image,
    delete_fn=GovcloudClient.delete_image,
    create_hint="govcloud image create NAME --path /var/lib/govcloud/images/NAME.qcow2",
)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. ubuntu-22.04")],
    path: Annotated[str | None, typer.Option("--path", help="disk image path on hosts")] = None,
    fmt: Annotated[ImageFormat, typer.Option("--format", help="how it is attached")] = (
        ImageFormat.QCOW2
    ),
    size_mib: Annotated[int, typer.Option("--size-mib")] = 0,
    min_ram_mib: Annotated[int, typer.Option("--min-ram-mib")] = 0,
    min_disk_gib: Annotated[int, typer.Option("--min-disk-gib")] = 0,
    kernel_path: Annotated[
        str | None, typer.Option("--kernel-path", help="for --format kernel")
    ] = None,
    initrd_path: Annotated[str | None, typer.Option("--initrd-path")] = None,
    cmdline: Annotated[str, typer.Option("--cmdline", help="kernel command line")] = "",
    description: Annotated[str, typer.Option("--description")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Register an image (platform-admins only)."""
    body = validated(
        ImageCreate,
        name=name,
        format=fmt,
        path=path,
        size_mib=size_mib,
        min_ram_mib=min_ram_mib,
        min_disk_gib=min_disk_gib,
        kernel_path=kernel_path,
        initrd_path=initrd_path,
        cmdline=cmdline,
        description=description,
    )
    created = api(ctx).create_image(body)
    note(f"Registered image {created.name}.")
    emit_one(created, output)
