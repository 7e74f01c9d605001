"""``govcloud lab run|runs|run-show|run-cancel|size|promote``: scenario runs, sizing from
measured usage, and moving a trial's servers into production.

``lab run TRIAL scenario.yaml`` starts a run and follows it, printing each change of
progress; Ctrl-C cancels the run (everything it created is removed) unless ``--detach``
was given. ``lab size`` takes the trial's latest completed run as the measurements of
``govcloud plan size`` and prints the procurement specification. Registered on the
``lab`` command group by :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.context import api, cli_env
from controlplane.cli.errors import ExitCode, validated
from controlplane.cli.lab_common import TrialArg, emit_detail, problem
from controlplane.cli.output import (
    Column,
    OutputFormat,
    OutputOpt,
    emit_list,
    emit_one,
    note,
    out_console,
    table,
)
from controlplane.cli.plan import (
    HostModelsOpt,
    SpecFormat,
    emit_sizing,
    host_models_from,
    read_input,
    targets_from,
)
from controlplane.client import GovcloudClient
from controlplane.lab.measure import GroupUsage, Stat
from controlplane.lab.runs import LabRun, SeriesPoint
from controlplane.lab.scenario import Scenario
from controlplane.planner.problems import PlanInputError
from controlplane.planner.sizing import Basis, Redundancy, SizingTargets, size
from controlplane.planner.yamlfile import load_model
from controlplane.schemas.lab import Promote, RunCancel

RunArg = Annotated[str, typer.Argument(metavar="RUN", help="run id (from `govcloud lab runs`)")]


def _pct(s: Stat) -> str:
    return f"{s.peak:.0%}/{s.p95:.0%}/{s.mean:.0%}"


GROUP_COLUMNS: list[Column[GroupUsage]] = [
    Column("GROUP", lambda g: g.group),
    Column("FLAVOR", lambda g: g.flavor),
    Column("VMS", lambda g: f"{g.running}/{g.requested}", "right"),
    Column("FAILED", lambda g: g.failed, "right"),
    Column("PROVISION S (p95)", lambda g: f"{g.provision_s.p95:.1f}", "right"),
    Column("CPU peak/p95/mean", lambda g: _pct(g.cpu), "right"),
    Column("RAM peak/p95/mean", lambda g: _pct(g.ram), "right"),
    Column("DISK peak/p95/mean", lambda g: _pct(g.disk), "right"),
    Column("SAMPLES", lambda g: g.cpu.samples, "right"),
]
RUN_COLUMNS: list[Column[LabRun]] = [
    Column("ID", lambda r: r.id),
    Column("NAME", lambda r: r.name),
    Column("STATE", lambda r: r.state.value),
    Column("VMS", lambda r: f"{r.running}/{r.vms}", "right"),
    Column("FAILED", lambda r: r.failed, "right"),
    Column("SAMPLES", lambda r: r.samples, "right"),
    Column("CREATED", lambda r: f"{r.created_at:%Y-%m-%d %H:%M:%S}"),
]
SERIES_COLUMNS: list[Column[SeriesPoint]] = [
    Column("AT", lambda p: f"{p.at:%H:%M:%S}"),
    Column("GROUP", lambda p: p.group),
    Column("INSTANCE", lambda p: p.instance_id[:8]),
    Column("CPU", lambda p: f"{p.cpu:.0%}", "right"),
    Column("RAM", lambda p: f"{p.ram:.0%}", "right"),
    Column("DISK", lambda p: f"{p.disk:.0%}", "right"),
]


def load_scenario(path: Path) -> Scenario:
    """The scenario file, validated; errors name file, line and field."""
    text = read_input(path, "scenario file", "scenario.yaml")
    with problem("fix the file; docs/lab.md (Scenario runs) has an example", PlanInputError):
        return load_model(text, str(path), Scenario, expected="a scenario (name, groups, ...)")


def _line(run: LabRun) -> str:
    return (
        f"[{run.state.value}] {run.running}/{run.vms} VM(s) running, {run.failed} failed, "
        f"{run.live} live, {run.samples} sample(s): {run.message}"
    )


def follow(
    client: GovcloudClient,
    run: LabRun,
    *,
    poll_s: float,
    cancel_on_interrupt: bool,
    sleep: Callable[[float], None],
) -> LabRun:
    """Print each change of the run's progress until it finishes; Ctrl-C cancels it."""
    last = ""
    while True:
        line = _line(run)
        if line != last:
            note(line)
            last = line
        if not run.state.active:
            return run
        try:
            sleep(poll_s)
            run = client.lab_run(run.id)
        except KeyboardInterrupt:
            if not cancel_on_interrupt:
                raise
            note(f"Interrupted: cancelling run {run.id} (its VMs are removed) ...")
            run = client.cancel_lab_run(run.id, RunCancel(reason="interrupted"))
            cancel_on_interrupt = False


def _print_run(run: LabRun) -> None:
    emit_one(run.model_copy(update={"groups": [], "scenario": run.scenario}), OutputFormat.TABLE)
    if run.groups:
        out_console().print(table(run.groups, GROUP_COLUMNS, title="Per group"))


def run_command(
    ctx: typer.Context,
    trial_id: TrialArg,
    scenario_file: Annotated[
        Path, typer.Argument(metavar="SCENARIO.yaml", help="groups, flavors, counts, loads")
    ],
    detach: Annotated[
        bool, typer.Option("--detach", help="start the run and return at once")
    ] = False,
    poll: Annotated[float, typer.Option("--poll", help="seconds between progress checks")] = 1.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Run a scenario in a trial: provision the groups, apply the load, measure, clean up.
    Progress is streamed; Ctrl-C cancels the run and removes what it created."""
    scenario = load_scenario(scenario_file)
    client = api(ctx)
    run = client.start_lab_run(trial_id, scenario)
    note(f"Run {run.id} of scenario {scenario.name} started ({scenario.vm_count} VM(s)).")
    if not detach:
        run = follow(
            client,
            run,
            poll_s=max(0.05, poll),
            cancel_on_interrupt=True,
            sleep=cli_env(ctx).sleep,
        )
    emit_detail(run, output, _print_run)
    if run.state.value in ("failed", "cancelled"):
        raise typer.Exit(ExitCode.API_ERROR)


def runs_command(
    ctx: typer.Context, trial_id: TrialArg, output: OutputOpt = OutputFormat.TABLE
) -> None:
    """A trial's scenario runs, newest first."""
    emit_list(api(ctx).lab_runs(trial_id), RUN_COLUMNS, output, empty="No scenario runs yet.")


def run_show_command(
    ctx: typer.Context,
    run_id: RunArg,
    series: Annotated[bool, typer.Option("--series", help="print every sample")] = False,
    group: Annotated[str | None, typer.Option("--group", help="only this group's samples")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """One run: progress and per-group peak/p95/mean of CPU, RAM and disk."""
    client = api(ctx)
    if series:
        emit_list(client.lab_run_series(run_id, group), SERIES_COLUMNS, output, empty="No samples.")
        return
    emit_detail(client.lab_run(run_id), output, _print_run)


def run_cancel_command(
    ctx: typer.Context,
    run_id: RunArg,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="until everything is removed")
    ] = True,
    poll: Annotated[float, typer.Option("--poll")] = 1.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Cancel a run in progress: its VMs and server groups are removed."""
    client = api(ctx)
    run = client.cancel_lab_run(run_id, RunCancel())
    if wait:
        run = follow(
            client, run, poll_s=max(0.05, poll), cancel_on_interrupt=False, sleep=cli_env(ctx).sleep
        )
    emit_one(run.model_copy(update={"groups": []}), output)


def size_command(
    ctx: typer.Context,
    trial_id: TrialArg,
    host_models: HostModelsOpt = None,
    targets: Annotated[
        Path | None, typer.Option("--targets", metavar="FILE", help="data centres (YAML)")
    ] = None,
    growth: Annotated[float, typer.Option(help="VM count multiplier, e.g. 1.3")] = 1.0,
    headroom: Annotated[float, typer.Option(help="fraction of each host kept free")] = 0.2,
    redundancy: Annotated[
        Redundancy, typer.Option(help="spare hosts per data centre", case_sensitive=False)
    ] = Redundancy.NONE,
    basis: Annotated[
        Basis, typer.Option(help="measured statistic to size on", case_sensitive=False)
    ] = Basis.P95,
    years: Annotated[int, typer.Option(help="term for the energy cost")] = 3,
    energy_price: Annotated[float, typer.Option("--energy-price", help="price per kWh")] = 0.0,
    output: Annotated[
        SpecFormat,
        typer.Option(
            "--output", "-o", help="table, markdown, html, json or yaml", case_sensitive=False
        ),
    ] = SpecFormat.TABLE,
) -> None:
    """Hardware to buy for the trial's measured usage (its latest completed run): hosts per
    candidate model and data centre, utilisation, power, price; the cheapest that fits."""
    catalog = host_models_from(host_models)
    dcs = targets_from(targets)
    hint = "--growth > 0, 0 <= --headroom < 1, --years 1..20"
    with problem(hint, ValueError, prefix="invalid option: "):
        goals = SizingTargets(
            growth=growth,
            headroom=headroom,
            redundancy=redundancy,
            basis=basis,
            years=years,
            energy_price_per_kwh=energy_price,
        )
    measured = api(ctx).lab_measurements(trial_id)
    with problem("fix the host models or the targets file"):
        result = size(measured, catalog, goals, dcs)
    emit_sizing(result, output)


def promote_command(
    ctx: typer.Context,
    trial_id: TrialArg,
    to: Annotated[str, typer.Option("--to", metavar="PROJECT", help="production project")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Move the trial's servers into a production project of its ministry (quota-checked:
    the project's quota is charged and the trial's released, in one transaction)."""
    done = api(ctx).promote_trial(trial_id, validated(Promote, to=to))
    note(f"{len(done.instances)} server(s) of {trial_id} now belong to project {done.project}.")
    emit_one(done, output)


def register(app: typer.Typer) -> None:
    """Add the commands to the ``lab`` group."""
    app.command("run")(run_command)
    app.command("runs")(runs_command)
    app.command("run-show")(run_show_command)
    app.command("run-cancel")(run_cancel_command)
    app.command("size")(size_command)
    app.command("promote")(promote_command)
