"""``govcloud plan``: capacity planning on the workstation, no control plane needed.

``size`` turns measured usage into hosts to buy (a procurement specification in Markdown,
HTML, JSON or YAML); ``consolidate`` plans moving machine rooms into the target data
centres; ``generate-inventory`` writes a realistic sample inventory; ``host-models``
lists the candidate models. This module only reads the files named on the command line
and prints; the planning itself is :mod:`controlplane.planner` (pure).

Exit codes: 0 a complete plan; 1 a plan was printed but is incomplete (rooms or
workloads left out, a limit overshot, no host model meets the targets); 2 bad input.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from controlplane.cli.errors import CliProblem, ExitCode
from controlplane.cli.output import (
    Column,
    OutputFormat,
    OutputOpt,
    dump,
    err_console,
    note,
    out_console,
    plain,
    table,
)
from controlplane.domain.errors import GovcloudError
from controlplane.planner.consolidate import (
    ConsolidationOptions,
    ConsolidationPlan,
    DcPlan,
    WavePlan,
    consolidate,
)
from controlplane.planner.generator import generate_inventory
from controlplane.planner.hostmodel import BUILTIN, HostModel, HostModelCatalog, load_host_models
from controlplane.planner.inventory import Workload, parse_inventory, to_csv
from controlplane.planner.problems import PlanInputError
from controlplane.planner.sizing import (
    Basis,
    ModelSizing,
    Redundancy,
    SizingResult,
    SizingTargets,
    load_measurements,
    size,
)
from controlplane.planner.spec import render_html, render_json, render_markdown
from controlplane.planner.target import TargetDataCentre, load_targets

app = typer.Typer(
    help="Capacity planning: size hardware from measured usage, plan room consolidation.",
    no_args_is_help=True,
)

EXAMPLES = "docs/examples/"


def read_input(path: Path, what: str, example: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliProblem(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise CliProblem(
            f"cannot read the {what} {path}: {exc.strerror or exc}",
            hint=f"check the path; {EXAMPLES}{example} is an example",
        ) from exc


def _parsed(error: PlanInputError, example: str) -> CliProblem:
    return CliProblem(error.message, hint=f"fix the file; {EXAMPLES}{example} is an example")


def host_models_from(path: Path | None) -> HostModelCatalog:
    if path is None:
        return BUILTIN
    try:
        return load_host_models(read_input(path, "host-models file", "host-models.yaml"), str(path))
    except PlanInputError as exc:
        raise _parsed(exc, "host-models.yaml") from exc


def targets_from(path: Path | None) -> list[TargetDataCentre]:
    if path is None:
        return []
    try:
        return list(
            load_targets(
                read_input(path, "targets file", "targets-dcs.yaml"), str(path)
            ).datacentres
        )
    except PlanInputError as exc:
        raise _parsed(exc, "targets-dcs.yaml") from exc


HostModelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--host-models",
        metavar="FILE",
        help="candidate host models (YAML); default: the built-in ones "
        "(docs/examples/host-models.yaml)",
    ),
]


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


# -- host-models ------------------------------------------------------------------------------


@app.command("host-models")
def host_models(host_models: HostModelsOpt = None, output: OutputOpt = OutputFormat.TABLE) -> None:
    """List the candidate host models and what one host of each offers to the scheduler."""
    catalog = host_models_from(host_models)
    if output is not OutputFormat.TABLE:
        dump(plain(catalog), output)
        return
    columns: list[Column[HostModel]] = [
        Column("MODEL", lambda m: m.name),
        Column("THREADS", lambda m: m.vcpus, "right"),
        Column("RAM GIB", lambda m: m.ram_gib, "right"),
        Column("DISK GIB", lambda m: m.disk_gib, "right"),
        Column("USABLE", lambda m: m.usable.describe()),
        Column("W IDLE/PEAK", lambda m: f"{m.idle_watts:g}/{m.peak_watts:g}", "right"),
        Column("U", lambda m: m.rack_units, "right"),
        Column(f"PRICE ({catalog.currency})", lambda m: f"{m.price:,.0f}", "right"),
    ]
    out_console().print(table(catalog.models, columns, title="Host models"))


# -- size -------------------------------------------------------------------------------------


class SpecFormat(StrEnum):
    """How the sizing result is printed."""

    TABLE = "table"
    MARKDOWN = "markdown"
    HTML = "html"
    JSON = "json"
    YAML = "yaml"


def print_sizing(result: SizingResult) -> None:
    cur = result.currency
    columns: list[Column[ModelSizing]] = [
        Column("MODEL", lambda m: m.model),
        Column("HOSTS", lambda m: m.hosts, "right"),
        Column("PER DC", lambda m: ", ".join(f"{d.datacentre}={d.hosts}" for d in m.datacentres)),
        Column("CPU LOAD", lambda m: _avg_load(m), "right"),
        Column("EXPECTED W", lambda m: f"{m.watts_expected:,.0f}", "right"),
        Column(f"PRICE ({cur})", lambda m: f"{m.price:,.0f}", "right"),
        Column(f"TOTAL COST ({cur})", lambda m: f"{m.total_cost:,.0f}", "right"),
        Column("MEETS TARGETS", lambda m: "yes" if m.feasible else "no: " + "; ".join(m.reasons)),
    ]
    t = result.targets
    title = (
        f"Sizing {result.workload or 'the workload'}: {result.demand.vms} VMs, growth "
        f"x{t.growth}, headroom {_pct(t.headroom)}, {t.redundancy.value}, on {t.basis.value}"
    )
    out_console().print(table(result.models, columns, title=title))
    note(f"Recommended: {result.recommendation}")


def _avg_load(m: ModelSizing) -> str:
    hosts = sum(d.hosts for d in m.datacentres)
    if not hosts:
        return "-"
    return _pct(sum(d.load.vcpus * d.hosts for d in m.datacentres) / hosts)


@app.command("size")
def size_command(
    measurements: Annotated[
        Path,
        typer.Option(
            "--measurements",
            "-m",
            metavar="FILE",
            help="measured usage per group of VMs (YAML), e.g. docs/examples/measurements.yaml",
        ),
    ],
    host_models: HostModelsOpt = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            metavar="FILE",
            help="data centres to size for (YAML); default: one data centre",
        ),
    ] = None,
    datacentre: Annotated[
        list[str] | None,
        typer.Option(
            "--datacentre",
            "--dc",
            metavar="CODE",
            help="only these data centres of --targets (repeatable)",
        ),
    ] = None,
    growth: Annotated[float, typer.Option(help="VM count multiplier, e.g. 1.3")] = 1.0,
    headroom: Annotated[
        float, typer.Option(help="fraction of each host's real capacity kept free")
    ] = 0.2,
    redundancy: Annotated[
        Redundancy, typer.Option(help="spare hosts per data centre", case_sensitive=False)
    ] = Redundancy.NONE,
    basis: Annotated[
        Basis, typer.Option(help="measured statistic to size on", case_sensitive=False)
    ] = Basis.P95,
    years: Annotated[int, typer.Option(help="term for the energy cost")] = 3,
    energy_price: Annotated[
        float, typer.Option("--energy-price", help="price per kWh, in the models' currency")
    ] = 0.0,
    output: Annotated[
        SpecFormat,
        typer.Option(
            "--output",
            "-o",
            help="table (default), markdown or html (a procurement specification), json, yaml",
            case_sensitive=False,
        ),
    ] = SpecFormat.TABLE,
) -> None:
    """How many hosts of each candidate model a measured workload needs, per data centre,
    with utilisation, power and price; recommends the cheapest model meeting the targets."""
    catalog = host_models_from(host_models)
    dcs = targets_from(targets)
    if datacentre:
        unknown = sorted(set(datacentre) - {dc.code for dc in dcs})
        if unknown:
            raise CliProblem(
                f"--datacentre {', '.join(unknown)}: not in the targets file "
                f"({', '.join(dc.code for dc in dcs) or 'none given; use --targets'})",
                hint="name data centres defined by --targets FILE",
            )
        dcs = [dc for dc in dcs if dc.code in datacentre]
    try:
        found = load_measurements(
            read_input(measurements, "measurements file", "measurements.yaml"), str(measurements)
        )
    except PlanInputError as exc:
        raise _parsed(exc, "measurements.yaml") from exc
    try:
        goals = SizingTargets(
            growth=growth,
            headroom=headroom,
            redundancy=redundancy,
            basis=basis,
            years=years,
            energy_price_per_kwh=energy_price,
        )
    except ValueError as exc:
        raise CliProblem(
            f"invalid option: {exc}",
            hint="--growth > 0, 0 <= --headroom < 1, --years 1..20, --energy-price >= 0",
        ) from exc
    try:
        result = size(found, catalog, goals, dcs)
    except GovcloudError as exc:
        raise CliProblem(exc.message, hint="fix the measurements or the targets file") from exc
    emit_sizing(result, output)


def emit_sizing(result: SizingResult, output: SpecFormat) -> None:
    """Print a sizing result in ``output``; exit 1 when no host model meets the targets."""
    if output is SpecFormat.TABLE:
        print_sizing(result)
    elif output is SpecFormat.MARKDOWN:
        sys.stdout.write(render_markdown(result))
    elif output is SpecFormat.HTML:
        sys.stdout.write(render_html(result))
    elif output is SpecFormat.JSON:
        sys.stdout.write(render_json(result))
    else:
        dump(plain(result), OutputFormat.YAML)
    if result.recommended is None:
        raise typer.Exit(ExitCode.API_ERROR)


# -- consolidate ------------------------------------------------------------------------------


def _print_plan(plan: ConsolidationPlan) -> None:
    dc_columns: list[Column[DcPlan]] = [
        Column("DATA CENTRE", lambda d: d.code),
        Column("REGION", lambda d: d.region),
        Column("ROOMS", lambda d: d.rooms, "right"),
        Column("WORKLOADS", lambda d: d.workloads, "right"),
        Column("HOSTS", lambda d: d.hosts, "right"),
        Column("LOWER BOUND", lambda d: d.lower_bound, "right"),
        Column("SPACE (HOSTS)", lambda d: d.max_hosts, "right"),
        Column("VCPU", lambda d: _pct(d.allocation.vcpus), "right"),
        Column("RAM", lambda d: _pct(d.allocation.ram), "right"),
        Column("DISK", lambda d: _pct(d.allocation.disk), "right"),
        Column("CPU LOAD", lambda d: _pct(d.cpu_load), "right"),
        Column("KW AFTER", lambda d: f"{d.power_after_w / 1000:,.1f}", "right"),
    ]
    wave_columns: list[Column[WavePlan]] = [
        Column("WAVE", lambda w: w.wave, "right"),
        Column("ROOMS", lambda w: len(w.rooms), "right"),
        Column("WORKLOADS", lambda w: w.workloads, "right"),
        Column("VCPU", lambda w: w.vcpus, "right"),
        Column("RAM GIB", lambda w: f"{w.ram_gib:,.0f}", "right"),
        Column("KW RETIRED", lambda w: f"{w.power_before_w / 1000:,.1f}", "right"),
        Column("HOSTS NEEDED (AT LEAST)", lambda w: w.hosts_lower_bound_after, "right"),
        Column("TO", lambda w: ", ".join(w.datacentres)),
    ]
    console = out_console()
    console.print(
        table(
            plan.datacentres,
            dc_columns,
            title=f"{plan.rooms} rooms, {plan.workloads} workloads onto {plan.host_model} hosts",
        )
    )
    console.print(table(plan.waves, wave_columns, title="Migration waves"))
    before = plan.power_before_measured_w + plan.power_before_estimated_w
    summary = [
        f"Hosts: {plan.hosts} (lower bound {plan.lower_bound}, "
        f"{plan.hosts_over_lower_bound * 100:+.1f} %; "
        f"{plan.lower_bound_pooled} if rooms could be split across data centres)",
        f"Power: {before / 1000:,.1f} kW before ({plan.power_before_measured_w / 1000:,.1f} "
        f"measured + {plan.power_before_estimated_w / 1000:,.1f} estimated), "
        f"{plan.power_after_w / 1000:,.1f} kW after ({plan.power_saving * 100:.0f} % less)",
    ]
    for line in summary:
        console.print(line, soft_wrap=True)


@app.command("consolidate")
def consolidate_command(
    inventory: Annotated[
        Path,
        typer.Option(
            "--inventory",
            metavar="CSV",
            help="existing workloads, one row each (see docs/examples/rooms-sample.csv)",
        ),
    ],
    targets: Annotated[
        Path,
        typer.Option(
            "--targets",
            metavar="FILE",
            help="target data centres (YAML), e.g. docs/examples/targets-dcs.yaml",
        ),
    ],
    host_model: Annotated[
        str, typer.Option("--host-model", metavar="NAME", help="the host model to buy")
    ],
    host_models: HostModelsOpt = None,
    waves: Annotated[int, typer.Option(help="migration waves (more if --max-wave-workloads)")] = 4,
    max_wave_workloads: Annotated[
        int | None, typer.Option(help="at most this many workloads per wave")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Plan moving machine rooms into the target data centres: hosts per data centre, the
    lower bound no packing can beat, utilisation, power before/after and migration waves."""
    catalog = host_models_from(host_models)
    try:
        model = catalog.get(host_model)
    except KeyError as exc:
        raise CliProblem(str(exc.args[0]), hint="`govcloud plan host-models` lists them") from exc
    dcs = targets_from(targets)
    try:
        workloads = parse_inventory(
            read_input(inventory, "inventory", "rooms-sample.csv"), str(inventory)
        )
    except PlanInputError as exc:
        raise _parsed(exc, "rooms-sample.csv") from exc
    try:
        options = ConsolidationOptions(waves=waves, max_wave_workloads=max_wave_workloads)
    except ValueError as exc:
        raise CliProblem(f"invalid option: {exc}", hint="--waves 1..1000") from exc
    plan = consolidate(workloads, dcs, model, options)
    if output is OutputFormat.TABLE:
        _print_plan(plan)
    else:
        dump(plain(plan), output)
    if plan.problems:
        console = err_console()
        for problem in plan.problems:
            console.print(f"[yellow]Warning:[/] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(ExitCode.API_ERROR)


# -- generate-inventory -----------------------------------------------------------------------


@app.command("generate-inventory")
def generate_inventory_command(
    rooms: Annotated[int, typer.Option(help="machine rooms")] = 280,
    workloads: Annotated[int, typer.Option(help="servers and VMs in all")] = 20_000,
    seed: Annotated[int, typer.Option(help="the same seed gives the same inventory")] = 1,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="CSV", help="write here (default: stdout)"),
    ] = None,
) -> None:
    """Write a realistic inventory of machine rooms (CSV): the programme's ministries and
    agencies, heavy-tailed room sizes, old physical servers and VMs, low CPU use."""
    try:
        generated: list[Workload] = generate_inventory(rooms, workloads, seed)
    except GovcloudError as exc:
        raise CliProblem(exc.message, hint="--rooms 1..100000, --workloads >= --rooms") from exc
    text = to_csv(generated)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliProblem(f"cannot write {out}: {exc.strerror or exc}") from exc
    note(f"Wrote {len(generated)} workloads in {rooms} rooms to {out}.")
