"""``govcloud quota``: hierarchical limits per organisation node (ministry, agency, project).

``show`` prints a node and its children (limit, used, headroom and % per dimension, with
over-limit and soft-threshold flags); ``set`` changes some limits of one node; ``apply``
applies a policy file (the diff first, then the change, idempotently); ``verify`` compares
stored usage with the live instances (and ``--repair``s drift); ``events`` lists
soft-threshold crossings. Every change prints its diff; ``--dry-run`` only prints it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, ExitCode, validated
from controlplane.cli.output import (
    Column,
    OutputFormat,
    OutputOpt,
    dump,
    emit_list,
    note,
    out_console,
    plain,
    table,
)
from controlplane.domain.quota import QuotaChange, QuotaDrift, QuotaEvent, QuotaNode, QuotaSet
from controlplane.schemas.quota import QuotaApply, QuotaVerify
from quotas import DIMENSIONS

app = typer.Typer(
    help="Quotas: limits, usage and headroom per ministry, agency and project.",
    no_args_is_help=True,
)

OrgArg = Annotated[str, typer.Argument(metavar="ORG", help="ministry, agency or project code")]
UNLIMITED = "unlimited"


# -- show -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One (node, dimension) row of ``quota show``."""

    node: QuotaNode
    child: bool
    dimension: str

    @property
    def label(self) -> str:
        return f"  {self.node.org}" if self.child else self.node.org

    @property
    def used(self) -> int:
        return self.node.usage.get(self.dimension, 0)

    @property
    def limit(self) -> int | None:
        return self.node.limits.get(self.dimension)

    def flags(self) -> str:
        dim = self.dimension
        if dim in self.node.over_limit:
            return "OVER LIMIT: blocks new usage"
        if dim in self.node.over_soft_threshold:
            return f"soft threshold ({self.node.soft_threshold * 100:g}%) reached"
        if self.node.headroom.get(dim) == 0:
            if self.limit is not None and self.used >= self.limit:
                return "full"
            return "full: a level above is at its limit"
        return ""


def _percent(line: _Line) -> str:
    value = line.node.percent_used.get(line.dimension)
    return "-" if value is None else f"{value:g}%"


def _limit(line: _Line) -> str:
    return UNLIMITED if line.limit is None else str(line.limit)


def _headroom(line: _Line) -> str:
    value = line.node.headroom.get(line.dimension)
    return UNLIMITED if value is None else str(value)


SHOW_COLUMNS: list[Column[_Line]] = [
    Column("ORG", lambda r: r.label),
    Column("KIND", lambda r: r.node.kind),
    Column("DIMENSION", lambda r: r.dimension),
    Column("USED", lambda r: r.used, "right"),
    Column("LIMIT", _limit, "right"),
    Column("HEADROOM", _headroom, "right"),
    Column("USED %", _percent, "right"),
    Column("FLAGS", lambda r: r.flags()),
]


def _lines(node: QuotaNode, *, child: bool) -> list[_Line]:
    """Rows for the dimensions ``node`` limits or uses (one '-' row when neither)."""
    dims = [d for d in DIMENSIONS if d in node.limits or node.usage.get(d)]
    return [_Line(node, child, d) for d in dims or ["instances"]]


@app.command("show")
def show(ctx: typer.Context, org: OrgArg, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Limits, usage, headroom and % used of ORG and of each of its children.

    Usage is the total of the node's whole subtree. HEADROOM is what one more request
    there may take (the least room left at the node and at its ancestors).
    """
    report = api(ctx).get_quota(org)
    if output is not OutputFormat.TABLE:
        dump(plain(report), output)
        return
    node = report.node
    rows = _lines(node, child=False)
    for child in report.children:
        rows += _lines(child, child=True)
    title = (
        f"Quota of {node.kind} {node.org} ({node.path}); "
        f"soft threshold {node.soft_threshold * 100:g}%"
    )
    out_console().print(table(rows, SHOW_COLUMNS, title=title))
    for item in [node, *report.children]:
        if item.over_limit:
            note(
                f"{item.org}: over its limit in {', '.join(item.over_limit)} (the limit was "
                "lowered below usage): new usage there is refused until usage drops."
            )


# -- set / apply: diffs -----------------------------------------------------------------------


def _value(value: int | float | None) -> str:
    if value is None:
        return UNLIMITED
    return f"{value:g}" if isinstance(value, float) else str(value)


CHANGE_COLUMNS: list[Column[QuotaChange]] = [
    Column("ORG", lambda c: c.org),
    Column("FIELD", lambda c: c.field),
    Column("OLD", lambda c: _value(c.old), "right"),
    Column("NEW", lambda c: _value(c.new), "right"),
    Column("USED", lambda c: c.used, "right"),
    Column("NOTE", lambda c: "below current usage: blocks new usage" if c.below_usage else ""),
]


def _show_diff(
    changes: Sequence[QuotaChange], output: OutputFormat, *, title: str | None = None
) -> None:
    """The changes as a table (people) or a list (-o json|yaml)."""
    if output is not OutputFormat.TABLE:
        dump(plain(changes), output)
        return
    if changes:
        out_console().print(table(changes, CHANGE_COLUMNS, title=title))
    below = [c for c in changes if c.below_usage]
    if below:
        note(
            f"Warning: {len(below)} new limit(s) below current usage; allowed, but no new "
            "usage of those dimensions is accepted until usage drops below the limit."
        )


def _dimension(text: str) -> str:
    name = text.strip().lower().replace("-", "_")
    if name not in DIMENSIONS:
        raise CliProblem(
            f"unknown dimension {text!r} for --unlimited",
            hint=f"use one of: {', '.join(DIMENSIONS)}",
        )
    return name


@app.command("set")
def set_limits(
    ctx: typer.Context,
    org: OrgArg,
    instances: Annotated[
        int | None, typer.Option("--instances", min=0, help="number of instances")
    ] = None,
    vcpus: Annotated[int | None, typer.Option("--vcpus", min=0, help="vCPUs")] = None,
    ram_mib: Annotated[int | None, typer.Option("--ram-mib", min=0, help="RAM in MiB")] = None,
    disk_gib: Annotated[int | None, typer.Option("--disk-gib", min=0, help="disk in GiB")] = None,
    trial_envs: Annotated[
        int | None, typer.Option("--trial-envs", min=0, help="Open Lab trial environments")
    ] = None,
    unlimited: Annotated[
        list[str] | None,
        typer.Option(
            "--unlimited",
            metavar="DIM",
            help=f"remove the limit of DIM (repeatable): {', '.join(DIMENSIONS)}",
        ),
    ] = None,
    soft_threshold: Annotated[
        float | None,
        typer.Option("--soft-threshold", help="warn at this fraction of each limit, e.g. 0.8"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the diff, change nothing")] = (
        False
    ),
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Change some limits of ORG (the others stay) and show what changed.

    A limit caps the whole subtree of ORG. Lowering one below current usage is allowed:
    it is flagged and blocks new usage. Ministry-admins set their agencies and projects;
    a ministry's own limits are set by platform-admins.
    """
    limits: dict[str, int | None] = {
        dim: value
        for dim, value in (
            ("instances", instances),
            ("vcpus", vcpus),
            ("ram_mib", ram_mib),
            ("disk_gib", disk_gib),
            ("trial_envs", trial_envs),
        )
        if value is not None
    }
    for text in unlimited or []:
        dim = _dimension(text)
        if dim in limits and limits[dim] is not None:
            raise CliProblem(
                f"{dim} is given both a limit ({limits[dim]}) and --unlimited",
                hint="choose one of them",
            )
        limits[dim] = None
    if not limits and soft_threshold is None:
        raise CliProblem(
            "nothing to change",
            hint="give at least one of --instances, --vcpus, --ram-mib, --disk-gib, "
            "--trial-envs, --unlimited DIM or --soft-threshold",
        )
    body = validated(QuotaSet, limits=limits, soft_threshold=soft_threshold)
    changes = api(ctx).set_quota(org, body, dry_run=dry_run)
    verb = "would change" if dry_run else "changed"
    _show_diff(changes, output, title=f"Limits of {org} ({verb})")
    if not changes:
        note(f"No changes: the limits of {org} are already so.")
    elif dry_run:
        note(f"Dry run: {len(changes)} change(s) shown; nothing was changed.")
    else:
        note(f"Changed {len(changes)} field(s) of {org}'s quota.")


def interactive() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="policy YAML: classes and/or assignments")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the diff, change nothing")] = (
        False
    ),
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="apply without asking for confirmation")
    ] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Apply a quota policy file: show the diff first, then make it so (idempotent).

    Each assignment makes that organisation's limits exactly what the file says (its
    class's limits with its overrides; dimensions left out are unlimited); organisations
    the file does not name are untouched. Asks for confirmation on a terminal unless
    --yes. A second run of the same file changes nothing. Platform-admins only.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliProblem(f"{file}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise CliProblem(
            f"cannot read {file}: {exc.strerror or exc}",
            hint="check the path; policy classes shipped with govcloud are in quotas/policies/",
        ) from exc
    if not text.strip():
        raise CliProblem(f"{file}:1: empty policy file; expected 'classes' or 'assignments'")
    client = api(ctx)
    planned = client.apply_quota_policy(
        validated(QuotaApply, policy=text, filename=str(file), dry_run=True)
    )
    if not planned:
        if output is not OutputFormat.TABLE:
            dump([], output)
        note(f"No changes: {file} is already applied.")
        return
    if dry_run or output is OutputFormat.TABLE:
        note(f"{file} makes {len(planned)} change(s):")
        _show_diff(planned, output)
    if dry_run:
        note(f"Dry run: {len(planned)} change(s) shown; nothing was changed.")
        return
    if not yes and interactive() and not typer.confirm(f"Apply {len(planned)} change(s)?"):
        raise CliProblem("nothing was changed", hint="", code=ExitCode.API_ERROR)
    applied = client.apply_quota_policy(
        validated(QuotaApply, policy=text, filename=str(file), dry_run=False)
    )
    if output is not OutputFormat.TABLE:
        dump(plain(applied), output)
    elif applied != planned:
        note("The limits changed since the diff above was made; these changes were applied:")
        _show_diff(applied, output)
    note(f"Applied {len(applied)} change(s) from {file}.")


# -- verify / events --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Drift:
    drift: QuotaDrift
    dimension: str


DRIFT_COLUMNS: list[Column[_Drift]] = [
    Column("ORG", lambda d: d.drift.org),
    Column("DIMENSION", lambda d: d.dimension),
    Column("STORED", lambda d: d.drift.stored.get(d.dimension, 0), "right"),
    Column("ACTUAL", lambda d: d.drift.actual.get(d.dimension, 0), "right"),
    Column("REPAIRED", lambda d: "yes" if d.drift.repaired else "no"),
]


@app.command("verify")
def verify(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="set stored usage to what the instances add up to")
    ] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Compare stored usage with the live instances in your scope (exit 1 on drift).

    Usage is recomputed from every non-DELETED instance. Drift is reported per node and
    dimension; --repair (platform-admins) sets the stored usage to the recomputed one.
    """
    drifts = api(ctx).verify_quotas(QuotaVerify(repair=repair))
    if output is not OutputFormat.TABLE:
        dump(plain(drifts), output)
    else:
        rows = [
            _Drift(d, dim)
            for d in drifts
            for dim in DIMENSIONS
            if d.stored.get(dim, 0) != d.actual.get(dim, 0)
        ]
        if rows:
            out_console().print(table(rows, DRIFT_COLUMNS, title="Quota usage drift"))
    if not drifts:
        note("No drift: stored usage matches the live instances.")
    elif repair:
        note(f"Repaired the usage of {len(drifts)} node(s).")
    else:
        raise CliProblem(
            f"stored usage of {len(drifts)} node(s) differs from the live instances",
            hint="repair it with `govcloud quota verify --repair` (platform-admins)",
            code=ExitCode.API_ERROR,
        )


EVENT_COLUMNS: list[Column[QuotaEvent]] = [
    Column("TIME", lambda e: e.time),
    Column("ORG", lambda e: e.org),
    Column("KIND", lambda e: e.kind),
    Column("DIMENSION", lambda e: e.dimension),
    Column("USED", lambda e: e.used, "right"),
    Column("LIMIT", lambda e: e.limit, "right"),
    Column("MESSAGE", lambda e: e.message),
]


@app.command("events")
def events(
    ctx: typer.Context,
    org: OrgArg,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, max=1000, help="show at most this many")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Soft-threshold crossings in ORG's subtree, newest first."""
    found = api(ctx).quota_events(org, limit=limit)
    emit_list(found, EVENT_COLUMNS, output, empty=f"No soft-threshold events in {org}.")
