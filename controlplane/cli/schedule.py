"""``govcloud schedule --dry-run``: where would these instances go now, and if nowhere,
why. Also the explanation renderer shared with ``govcloud server why`` and ``show``."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, dump, emit_list, note, plain
from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.instance import PlacementExplanation
from controlplane.schemas.schedule import ScheduledInstance, ScheduleRequest

PLACEMENT_COLUMNS: list[Column[ScheduledInstance]] = [
    Column("#", lambda p: p.index),
    Column("HOST", lambda p: p.host),
    Column("DC", lambda p: p.datacentre),
]


def explanation_lines(expl: PlacementExplanation) -> list[str]:
    """A short, readable account of one decision."""
    lines = [
        f"decision: {expl.outcome} ({expl.placed} of {expl.requested} placed, policy "
        f"{expl.policy}, seed {expl.seed})",
        f"hosts: {expl.evaluated} evaluated, {expl.feasible} feasible",
    ]
    if expl.rejected:
        counts = ", ".join(f"{check} {n}" for check, n in expl.rejected.items())
        lines.append(f"rejected by check: {counts}")
    if expl.capacity_short:
        dims = ", ".join(f"{dim} on {n} host(s)" for dim, n in expl.capacity_short.items())
        lines.append(f"capacity ran out in: {dims}")
    if expl.fits_when_free:
        lines.append(f"would fit on {expl.fits_when_free} host(s) once room frees there")
    lines.extend(f"  {e.host} [{e.check}]: {e.reason}" for e in expl.examples)
    lines.append(expl.message)
    return lines


def schedule(
    ctx: typer.Context,
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="`govcloud flavor list`")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="required: only ask, never create")
    ] = False,
    count: Annotated[int, typer.Option("--count", "-n", help="how many instances")] = 1,
    dc: Annotated[str | None, typer.Option("--dc", help="only this data centre")] = None,
    trait: Annotated[
        list[str] | None, typer.Option("--trait", help="required host trait (repeatable)")
    ] = None,
    forbid_trait: Annotated[
        list[str] | None, typer.Option("--forbid-trait", help="forbidden trait (repeatable)")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="server group (name needs --project)")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="project code")] = None,
    policy: Annotated[
        PlacementPolicy | None, typer.Option("--policy", help="override the DC's policy")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Where would COUNT instances of FLAVOR go now? Nothing is created."""
    if not dry_run:
        raise CliProblem(
            "only dry runs are supported here", hint="add --dry-run (create with `server create`)"
        )
    body = validated(
        ScheduleRequest,
        flavor=flavor,
        count=count,
        datacentre=dc,
        project=project,
        server_group=group,
        required_traits=trait or [],
        forbidden_traits=forbid_trait or [],
        policy=policy,
    )
    result = api(ctx).schedule(body)
    if output is not OutputFormat.TABLE:
        dump(plain(result), output)
        return
    emit_list(result.placements, PLACEMENT_COLUMNS, output, empty="Nowhere.")
    for line in explanation_lines(result.explanation):
        note(line)
