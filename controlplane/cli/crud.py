"""The ``list``, ``show`` and ``delete`` commands every noun has, built once.

Nouns (``org``, ``dc``, ``host``, ``flavor``, ``image``) call :func:`add_read_commands`
with their columns and client calls instead of repeating the same three functions; their
own modules then add what is particular to them (``create``, ``update``, ...).
"""

# No `from __future__ import annotations`: Typer must evaluate the annotations of the
# commands defined inside add_read_commands, which refer to its local ``key_arg``.
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel

from controlplane.cli.context import api
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.client import GovcloudClient

M = TypeVar("M", bound=BaseModel)


def add_read_commands(
    app: typer.Typer,
    *,
    noun: str,
    key: str,
    get_fn: Callable[[GovcloudClient, str], M],
    columns: Sequence[Column[M]] = (),
    list_fn: Callable[[GovcloudClient], Sequence[M]] | None = None,
    delete_fn: Callable[[GovcloudClient, str], None] | None = None,
    create_hint: str = "",
) -> None:
    """Register ``show``, and ``list`` (with ``list_fn``) and ``delete`` (with
    ``delete_fn``) on ``app``; a noun whose list takes filters writes its own."""
    key_arg = Annotated[str, typer.Argument(metavar=key.upper(), help=f"the {noun}'s {key}")]

    if list_fn is not None:
        lister = list_fn

        @app.command("list", help=f"List {noun}s.")
        def list_items(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
            empty = f"No {noun}s yet." + (f" Create one: `{create_hint}`." if create_hint else "")
            emit_list(lister(api(ctx)), columns, output, empty=empty)

    @app.command("show", help=f"Show one {noun}.")
    def show_item(
        ctx: typer.Context, ident: key_arg, output: OutputOpt = OutputFormat.TABLE
    ) -> None:
        emit_one(get_fn(api(ctx), ident), output)

    if delete_fn is not None:
        deleter = delete_fn

        @app.command("delete", help=f"Delete a {noun} (refused while something uses it).")
        def delete_item(ctx: typer.Context, ident: key_arg) -> None:
            deleter(api(ctx), ident)
            note(f"Deleted {noun} {ident}.")
