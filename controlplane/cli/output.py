"""Rendering for every CLI command: rich tables for people, ``-o json|yaml`` for scripts.

Owns the ``-o/--output`` option (:data:`OutputOpt`, the same on every command that prints
a resource), :class:`Column` specs, :func:`emit_list`/:func:`emit_one`, and the two
consoles (results on stdout, progress and errors on stderr, so ``-o json`` output stays
machine-readable while ``--wait`` shows its progress).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, Generic, TypeVar

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Width used when stdout is not a terminal (pipes, CliRunner): wide enough for ids.
PIPE_WIDTH = 200


class OutputFormat(StrEnum):
    """How results are printed."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        help="table (default, for people), json or yaml (for scripts)",
        case_sensitive=False,
    ),
]


def out_console() -> Console:
    """Results (stdout); resolved per call so captured streams work."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def err_console() -> Console:
    """Progress, warnings and errors (stderr)."""
    return Console(file=sys.stderr, width=None if sys.stderr.isatty() else PIPE_WIDTH)


@dataclass(frozen=True)
class Column(Generic[T]):
    """One table column: its header and how to read the cell from an item."""

    header: str
    get: Callable[[T], object]
    justify: str = "left"


def cell(value: object) -> str:
    """A value as table text: enums by value, times to the second, None as '-'."""
    if value is None or value == "":
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, BaseModel):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.model_dump().items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def plain(data: BaseModel | Sequence[BaseModel]) -> Any:
    """JSON-ready data of a model or a list of models."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return [item.model_dump(mode="json") for item in data]


def dump(data: Any, fmt: OutputFormat) -> None:
    """Print plain data as JSON or YAML on stdout (no colours, no wrapping)."""
    if fmt is OutputFormat.JSON:
        text = json.dumps(data, indent=2, ensure_ascii=False)
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    sys.stdout.write(text + "\n")


def table(items: Sequence[T], columns: Sequence[Column[T]], *, title: str | None = None) -> Table:
    """A rich table of ``items`` (cells are plain text: no markup from API values)."""
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column.header, justify=column.justify)  # type: ignore[arg-type]
    for item in items:
        grid.add_row(*(Text(cell(column.get(item))) for column in columns))
    return grid


def emit_list(
    items: Sequence[M],
    columns: Sequence[Column[M]],
    fmt: OutputFormat,
    *,
    empty: str,
    title: str | None = None,
) -> None:
    """Print a list: a table, or every item in full as JSON/YAML."""
    if fmt is not OutputFormat.TABLE:
        dump(plain(items), fmt)
        return
    if not items:
        err_console().print(Text(empty, style="dim"))
        return
    out_console().print(table(items, columns, title=title))


def emit_one(item: BaseModel, fmt: OutputFormat, *, extra: dict[str, object] | None = None) -> None:
    """Print one resource: a field/value table, or the full object as JSON/YAML."""
    if fmt is not OutputFormat.TABLE:
        dump(plain(item), fmt)
        return
    rows = {name: getattr(item, name) for name in type(item).model_fields}
    rows.update(extra or {})
    grid = Table(show_header=False, box=None, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows.items():
        grid.add_row(key, Text(cell(value)))
    out_console().print(grid)


def note(message: str) -> None:
    """A short confirmation or remark for people (stderr, so stdout stays data)."""
    err_console().print(Text(message))
