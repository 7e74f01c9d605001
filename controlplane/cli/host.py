"""``govcloud host``: the hypervisor fleet (list, show, update) and enrolment tokens.

The utilisation columns here are also what ``govcloud demo`` prints per host.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from controlplane.cli import fleet
from controlplane.cli.context import api
from controlplane.cli.crud import add_read_commands
from controlplane.cli.enrol import decommission, enrol
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.host import Host, HostState
from controlplane.schemas.host import BootstrapTokenCreate, HostUpdate

app = typer.Typer(
    help="Hypervisor hosts (operators; root auditors may read).", no_args_is_help=True
)
token_app = typer.Typer(help="One-time tokens with which a new host's agent enrols.")
app.add_typer(token_app, name="token")


def share(used: int, usable: int, unit: str = "", scale: int = 1) -> str:
    """``used/usable unit (pct%)``, e.g. ``12/64 (19%)``."""
    pct = round(100 * used / usable) if usable else 0
    suffix = f" {unit}" if unit else ""
    return f"{used // scale}/{usable // scale}{suffix} ({pct}%)"


UTILISATION: list[Column[Host]] = [
    Column("VCPUS", lambda h: share(h.used.vcpus, h.usable.vcpus), "right"),
    Column("RAM", lambda h: share(h.used.ram_mib, h.usable.ram_mib, "GiB", 1024), "right"),
    Column("DISK", lambda h: share(h.used.disk_gib, h.usable.disk_gib, "GiB"), "right"),
]

COLUMNS: list[Column[Host]] = [
    Column("NAME", lambda h: h.name),
    Column("DC", lambda h: h.datacentre),
    Column("STATE", lambda h: h.state),
    *UTILISATION,
    Column("TRAITS", lambda h: h.traits),
    Column("LAST HEARTBEAT", lambda h: h.last_heartbeat),
]


add_read_commands(app, noun="host", key="name", get_fn=GovcloudClient.get_host)
app.command("enrol")(enrol)
app.command("decommission")(decommission)
for _name, _command in (
    ("drain", fleet.drain),
    ("undrain", fleet.undrain),
    ("maintenance", fleet.maintenance),
    ("drains", fleet.drains),
):
    app.command(_name)(_command)


@app.command("list")
def list_hosts(
    ctx: typer.Context,
    dc: Annotated[str | None, typer.Option("--dc", help="only hosts in this data centre")] = None,
    state: Annotated[HostState | None, typer.Option("--state", help="only this state")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Hosts with their state and what is allocated of each resource."""
    hosts = api(ctx).list_hosts(datacentre=dc, state=state.value if state else None)
    hosts.sort(key=lambda h: (h.datacentre, h.name))
    hint = "Enrol hosts with `govcloud host enrol --inventory FILE --dc DC` (docs/enrolment.md)."
    emit_list(hosts, COLUMNS, output, empty=f"No hosts match. {hint}")


@app.command("update")
def update(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(metavar="NAME", help="the host's name or id")],
    state: Annotated[
        HostState | None,
        typer.Option("--state", help="maintenance/disabled stop new placements"),
    ] = None,
    cpu_ratio: Annotated[float | None, typer.Option("--cpu-ratio", help="vCPU overcommit")] = None,
    ram_ratio: Annotated[float | None, typer.Option("--ram-ratio", help="RAM overcommit")] = None,
    disk_ratio: Annotated[float | None, typer.Option("--disk-ratio")] = None,
    trait: Annotated[
        list[str] | None,
        typer.Option("--trait", help="replace the traits (repeat for several; '' clears)"),
    ] = None,
    idle_watts: Annotated[
        float | None, typer.Option("--idle-watts", help="draw when idle (W), for consolidation")
    ] = None,
    peak_watts: Annotated[
        float | None, typer.Option("--peak-watts", help="draw at full CPU load (W)")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Change a host's state, allocation ratios, traits or power model (platform-admins
    only)."""
    client = api(ctx)
    ratios = None
    if (cpu_ratio, ram_ratio, disk_ratio) != (None, None, None):
        current = client.get_host(host).ratios
        changes = {"cpu": cpu_ratio, "ram": ram_ratio, "disk": disk_ratio}
        ratios = current.model_dump() | {k: v for k, v in changes.items() if v is not None}
    traits = None if trait is None else [t for t in trait if t]
    if (state, ratios, traits, idle_watts, peak_watts) == (None, None, None, None, None):
        raise CliProblem(
            "nothing to change",
            hint="give --state, a --*-ratio, --trait or --idle-watts/--peak-watts (see --help)",
        )
    body = validated(
        HostUpdate,
        state=state,
        ratios=ratios,
        traits=traits,
        idle_watts=idle_watts,
        peak_watts=peak_watts,
    )
    emit_one(client.update_host(host, body), output)


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    dc: Annotated[str, typer.Option("--dc", help="the data centre the host joins")],
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="valid for this long")] = 24.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Issue a one-time bootstrap token for enrolling one host (shown once)."""
    issued = api(ctx).create_bootstrap_token(
        validated(BootstrapTokenCreate, datacentre=dc, ttl_hours=ttl_hours)
    )
    emit_one(issued, output)
    if output is OutputFormat.TABLE:
        valid = timedelta(hours=ttl_hours)
        note(
            f"Valid once, for {valid}. On the new host, put it in the agent's config as "
            "`bootstrap_token:` and start `govcloud-agent --config FILE`."
        )
