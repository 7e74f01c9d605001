"""``govcloud dc consolidate CODE``: consolidation for energy from the command line, and
``govcloud dc consolidations`` (history). Registered on the ``dc`` command group.

``--dry-run`` prints the plan (moves, each host before and after, hosts freed, power
saved); without it the control plane stores the plan and executes it while the command
follows progress (Ctrl-C stops following, not the plan). ``--show``, ``--pause``,
``--resume`` and ``--cancel`` steer the data centre's open consolidation. See
docs/fleet.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.follow import follow
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
from controlplane.client import GovcloudClient
from controlplane.domain.consolidation import (
    DEFAULT_RESERVE,
    OPEN_STATES,
    Consolidation,
    ConsolidationParams,
    ConsolidationPlan,
    ConsolidationState,
    HostPlan,
    Move,
    Step,
    StepState,
)
from controlplane.domain.migration import DEFAULT_MAX_PARALLEL
from controlplane.domain.resources import Resources

DEFAULT_TIMEOUT_S = 3600.0


def _gib(mib: int) -> str:
    return f"{mib / 1024:g}"


def _arrow(before: object, after: object) -> str:
    return str(before) if before == after else f"{before} -> {after}"


def _use(r: Resources, usable: Resources, dim: str, scale: int = 1) -> str:
    used, cap = getattr(r, dim), getattr(usable, dim)
    pct = round(100 * used / cap) if cap else 0
    return f"{used // scale} ({pct}%)"


MOVE_COLUMNS: list[Column[Move]] = [
    Column("SEQ", lambda m: m.seq, "right"),
    Column("SERVER", lambda m: m.instance_name),
    Column("FROM", lambda m: m.source),
    Column("TO", lambda m: m.target),
    Column("VCPUS", lambda m: m.size.vcpus, "right"),
    Column("RAM GIB", lambda m: _gib(m.size.ram_mib), "right"),
]

HOST_COLUMNS: list[Column[HostPlan]] = [
    Column("HOST", lambda h: h.name),
    Column("STATE", lambda h: h.state),
    Column("ACTION", lambda h: h.action),
    Column("SERVERS", lambda h: _arrow(h.instances_before, h.instances_after), "right"),
    Column(
        "VCPUS",
        lambda h: _arrow(
            _use(h.used_before, h.usable, "vcpus"), _use(h.used_after, h.usable, "vcpus")
        ),
        "right",
    ),
    Column(
        "RAM GIB",
        lambda h: _arrow(
            _use(h.used_before, h.usable, "ram_mib", 1024),
            _use(h.used_after, h.usable, "ram_mib", 1024),
        ),
        "right",
    ),
    Column(
        "WATTS",
        lambda h: (
            _arrow(f"{h.watts_before:g}", f"{h.watts_after:g}") + ("*" if h.power_estimated else "")
        ),
        "right",
    ),
    Column("WHY NOT FREED", lambda h: h.reason),
]

STEP_COLUMNS: list[Column[Step]] = [
    Column("SEQ", lambda s: s.seq, "right"),
    Column("SERVER", lambda s: s.instance_name),
    Column("FROM", lambda s: s.source),
    Column("TO", lambda s: s.target),
    Column("STATE", lambda s: s.state),
    Column("MESSAGE", lambda s: s.message),
]

HISTORY_COLUMNS: list[Column[Consolidation]] = [
    Column("ID", lambda c: c.id),
    Column("DC", lambda c: c.datacentre),
    Column("STATE", lambda c: c.state),
    Column("MOVED", lambda c: f"{c.done}/{c.total}", "right"),
    Column("SKIPPED", lambda c: c.skipped, "right"),
    Column("FAILED", lambda c: c.failed, "right"),
    Column("POWERED DOWN", lambda c: f"{c.powered_down}/{len(c.plan.freed)}", "right"),
    Column("SAVES W", lambda c: f"{c.plan.watts_saved:g}", "right"),
    Column("STARTED", lambda c: c.started_at),
    Column("MESSAGE", lambda c: c.message),
]


def summary(plan: ConsolidationPlan) -> list[str]:
    """The plan's headline lines: hosts freed, power saved, and what was estimated."""
    active = [h for h in plan.hosts if h.action != "excluded"]
    lines = [
        f"Hosts freed: {len(plan.freed)} of {len(active)} active"
        + (f" ({', '.join(plan.freed)}), powered down once empty" if plan.freed else "")
        + (f"; spares kept on: {', '.join(plan.spares)}" if plan.spares else "")
        + f". Moves: {len(plan.moves)}.",
        f"Power: {plan.watts_before:g} W -> {plan.watts_after:g} W: saves "
        f"{plan.watts_saved:g} W, about {plan.kwh_month_saved:g} kWh per month.",
    ]
    if plan.power_estimated_hosts:
        default = plan.default_power
        lines.append(
            f"* estimated with the default power model (idle {default.idle_watts:g} W, peak "
            f"{default.peak_watts:g} W) for {len(plan.power_estimated_hosts)} host(s) without "
            "one; set it with `govcloud host update HOST --idle-watts W --peak-watts W`."
        )
    lines.append(
        f"Plan: {plan.strategy} (the first-fit baseline frees {plan.baseline_freed}); "
        f"reserve {plan.params.reserve}, max fill {plan.params.max_fill:g}."
    )
    return lines


def print_plan(plan: ConsolidationPlan, fmt: OutputFormat) -> None:
    """The plan as tables and headline lines, or as JSON/YAML."""
    if fmt is not OutputFormat.TABLE:
        dump(plain(plan), fmt)
        return
    console = out_console()
    if plan.moves:
        console.print(table(plan.moves, MOVE_COLUMNS, title=f"Moves in {plan.datacentre}"))
    console.print(table(plan.hosts, HOST_COLUMNS, title="Hosts before -> after"))
    for line in summary(plan):
        console.print(line, markup=False, highlight=False)


def print_status(item: Consolidation, fmt: OutputFormat) -> None:
    """A consolidation's steps, hosts and headline, or the whole object as JSON/YAML."""
    if fmt is not OutputFormat.TABLE:
        dump(plain(item), fmt)
        return
    console = out_console()
    if item.steps:
        console.print(table(item.steps, STEP_COLUMNS, title=f"Consolidation {item.id}"))
    for host in item.hosts:
        line = f"{host.name}: {host.outcome.value}" + (f" ({host.message})" if host.message else "")
        console.print(line, markup=False, highlight=False)
    console.print(
        f"{item.datacentre}: {item.state.value}; {progress(item)}"
        + (
            f"; {item.message}"
            if item.message and item.state is not ConsolidationState.DONE
            else ""
        ),
        markup=False,
        highlight=False,
    )


def progress(item: Consolidation) -> str:
    """One line of progress."""
    return (
        f"{item.done}/{item.total} moved, {item.in_flight} in flight, {item.skipped} skipped, "
        f"{item.failed} failed; {item.powered_down}/{len(item.plan.freed)} host(s) powered down"
    )


def _hint(code: str) -> str:
    return (
        f"watch it:  govcloud dc consolidate {code} --show --wait"
        f"\n  pause it:  govcloud dc consolidate {code} --pause"
    )


def follow_consolidation(
    ctx: typer.Context, client: GovcloudClient, item: Consolidation, timeout_s: float
) -> Consolidation:
    """Follow the consolidation until it is no longer running, printing each step that
    ends and a progress line whenever it changes. Ctrl-C stops following only."""
    seen = {s.seq: s.state for s in item.steps}

    def report(current: Consolidation) -> str:
        for step in current.steps:
            if step.state is not seen.get(step.seq) and step.state is not StepState.PENDING:
                seen[step.seq] = step.state
                message = f" ({step.message})" if step.message else ""
                note(
                    f"  #{step.seq} {step.instance_name} {step.source} -> {step.target}: "
                    f"{step.state.value}{message}"
                )
        return f"  {progress(current)}  [{current.state.value}]"

    return follow(
        ctx,
        item,
        fetch=lambda c: client.get_consolidation(c.datacentre),
        ongoing=lambda c: c.state.value if c.state is ConsolidationState.RUNNING else None,
        progress=report,
        subject=f"consolidation {item.id} of {item.datacentre}",
        hint=_hint(item.datacentre),
        timeout_s=timeout_s,
    )


def consolidate(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE", help="the data centre")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only print the plan; nothing moves")
    ] = False,
    reserve: Annotated[
        int, typer.Option("--reserve", min=0, help="empty active hosts kept on as spares")
    ] = DEFAULT_RESERVE,
    max_fill: Annotated[
        float,
        typer.Option("--max-fill", help="fill receiving hosts to at most this share (0-1]"),
    ] = 1.0,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", min=1, help="live migrations in flight at once")
    ] = DEFAULT_MAX_PARALLEL,
    show: Annotated[bool, typer.Option("--show", help="the open (else latest) run")] = False,
    pause: Annotated[bool, typer.Option("--pause", help="start no new moves")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="carry on with the same plan")] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="stop for good; hosts not powered down stay on")
    ] = False,
    wait: Annotated[
        bool | None,
        typer.Option(
            "--wait/--no-wait",
            help="follow progress (default: when starting or resuming)",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds to follow at most")
    ] = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Empty lightly loaded hosts by live migration and power them down (platform admins).

    The plan never overfills a host (nor beyond --max-fill on hosts that receive), keeps
    server-group rules, moves only RUNNING/STOPPED servers off ACTIVE hosts and keeps
    --reserve empty hosts on. Freed hosts end in `maintenance`, noted "powered down for
    consolidation". Power is idle + (peak - idle) x CPU allocation per host.
    """
    flags = {"--dry-run": dry_run, "--show": show, "--pause": pause, "--resume": resume}
    chosen = [name for name, on in (flags | {"--cancel": cancel}).items() if on]
    if len(chosen) > 1:
        raise CliProblem(
            f"{' and '.join(chosen)} cannot be combined", hint="give at most one of them"
        )
    client = api(ctx)
    if dry_run:
        body = validated(
            ConsolidationParams, reserve=reserve, max_fill=max_fill, max_parallel=max_parallel
        )
        print_plan(client.plan_consolidation(code, body), output)
        return
    if show or pause or resume or cancel:
        if show:
            item = client.get_consolidation(code)
        else:
            action = "pause" if pause else "resume" if resume else "cancel"
            item = client.steer_consolidation(code, action)
            note(f"Consolidation {item.id} of {code} is {item.state.value}.")
        if (resume if wait is None else wait) and item.state in OPEN_STATES:
            item = follow_consolidation(ctx, client, item, timeout)
        print_status(item, output)
        return
    body = validated(
        ConsolidationParams, reserve=reserve, max_fill=max_fill, max_parallel=max_parallel
    )
    item = client.start_consolidation(code, body)
    for line in summary(item.plan):
        note(line)
    note(
        f"Consolidating {code}: {item.total} move(s), at most {item.params.max_parallel} at "
        f"a time (consolidation {item.id})."
    )
    if wait is None or wait:
        item = follow_consolidation(ctx, client, item, timeout)
    print_status(item, output)


def history(
    ctx: typer.Context,
    code: Annotated[
        str | None, typer.Argument(metavar="[CODE]", help="only this data centre")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Consolidations with their progress, newest first."""
    items = api(ctx).list_consolidations(datacentre=code)
    emit_list(items, HISTORY_COLUMNS, output, empty="No consolidations.")
