"""Moving workload between hosts from the command line: ``server migrate``, ``host drain``
/ ``undrain`` / ``maintenance`` / ``drains``, and ``dc evacuate`` (registered on those
command groups). ``--wait`` follows a migration or a drain until it ends, printing
progress lines (``cli/follow.py``). See docs/fleet.md."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api, cli_env
from controlplane.cli.errors import CliProblem, ExitCode, validated
from controlplane.cli.follow import follow
from controlplane.cli.maintenance import parse_time
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.client import GovcloudClient
from controlplane.domain.migration import (
    DEFAULT_MAX_PARALLEL,
    Drain,
    DrainState,
    Migration,
    MigrationPhase,
)
from controlplane.schemas.migration import DrainRequest, EvacuateRequest, MaintenanceRequest

DEFAULT_TIMEOUT_S = 1800.0

Wait = Annotated[
    bool, typer.Option("--wait", help="follow progress until done (exit 6 on timeout)")
]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help="seconds --wait waits at most")]
MaxParallel = Annotated[
    int,
    typer.Option("--max-parallel", min=1, max=64, help="migrations in flight at once"),
]
HostArg = Annotated[str, typer.Argument(metavar="HOST", help="the host's name or id")]
#: Phases in which a migration is still moving.
_MOVING = (MigrationPhase.PREPARING, MigrationPhase.HANDOFF)

DRAIN_COLUMNS: list[Column[Drain]] = [
    Column("ID", lambda d: d.id),
    Column("KIND", lambda d: d.kind),
    Column("SUBJECT", lambda d: d.subject_name),
    Column("TO", lambda d: d.target_datacentre),
    Column("STATE", lambda d: d.state),
    Column("MOVED", lambda d: f"{d.migrated}/{d.total}", "right"),
    Column("IN FLIGHT", lambda d: d.in_flight, "right"),
    Column("FAILED", lambda d: d.failed, "right"),
    Column("MESSAGE", lambda d: d.message),
]


def progress_line(drain: Drain) -> str:
    """One line of drain progress."""
    line = (
        f"  {drain.subject_name}: {drain.migrated}/{drain.total} moved, {drain.in_flight} in "
        f"flight, {drain.failed} failed, {drain.remaining} left  [{drain.state.value}]"
    )
    return f"{line}  {drain.message}" if drain.message else line


def follow_drain(
    ctx: typer.Context, client: GovcloudClient, drain: Drain, timeout_s: float
) -> Drain:
    """Follow the drain until it ends (a drain of a host ends empty; exit 6 after
    ``timeout_s``)."""
    return follow(
        ctx,
        client.get_drain(drain.id),
        fetch=lambda d: client.get_drain(d.id),
        ongoing=lambda d: d.state.value if d.state is DrainState.RUNNING else None,
        progress=progress_line,
        subject=f"drain of {drain.subject_name}",
        hint=f"follow it with `govcloud host drains {drain.subject_name}`",
        timeout_s=timeout_s,
    )


def migrate(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(metavar="SERVER", help="id, or name if unambiguous")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="target host (default: the scheduler picks one)"),
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 600.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Live-migrate a server to another host of its data centre (platform admins).

    The target is claimed at once; the source host's agent migrates the VM (on real
    libvirt a live migration; on simulated hosts a pause-and-move) and the source copy is
    removed only after the target runs it. A failure leaves the server where it was.
    """
    from controlplane.cli.server import resolve  # the server group imports this module

    client = api(ctx)
    mig = client.migrate_instance(resolve(client, server), to)
    note(
        f"Migrating {mig.instance_name} ({mig.instance_id}): {mig.source_host} -> "
        f"{mig.target_host} ({mig.kind.value})."
    )
    if wait:
        mig = _follow_migration(ctx, client, mig, timeout)
    emit_one(mig, output)
    if mig.phase is MigrationPhase.FAILED:
        raise CliProblem(
            f"migration of {mig.instance_name} failed: {mig.message}",
            hint=f"see `govcloud server actions {mig.instance_id}`",
            code=ExitCode.API_ERROR,
        )


def _follow_migration(
    ctx: typer.Context, client: GovcloudClient, mig: Migration, timeout_s: float
) -> Migration:
    clock = cli_env(ctx).clock
    began = clock()
    lines: dict[MigrationPhase, str] = {}

    def progress(m: Migration) -> str:  # a line per phase, when the phase is first seen
        return lines.setdefault(m.phase, f"  {m.phase.value}  {clock() - began:.1f}s  {m.message}")

    return follow(
        ctx,
        mig,
        fetch=lambda m: client.get_migration(m.id),
        ongoing=lambda m: m.phase.value if m.phase in _MOVING else None,
        progress=progress,
        subject=f"migration of {mig.instance_name}",
        hint=(
            f"`govcloud server show {mig.instance_id}` shows it (the control plane's "
            "timeout rolls it back)"
        ),
        timeout_s=timeout_s,
    )


def drain(
    ctx: typer.Context,
    host: HostArg,
    max_parallel: MaxParallel = DEFAULT_MAX_PARALLEL,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Stop new placements on a host and live-migrate its servers to other hosts of its
    data centre, at most --max-parallel at a time. The host stays `draining` (empty)
    until `govcloud host undrain`."""
    client = api(ctx)
    started = client.drain_host(host, validated(DrainRequest, max_parallel=max_parallel))
    note(f"Draining {started.subject_name}: {started.total} server(s) to move.")
    emit_one(follow_drain(ctx, client, started, timeout) if wait else started, output)


def undrain(ctx: typer.Context, host: HostArg, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Put a draining or maintained host back into service (`active`); a running drain is
    cancelled (migrations already in flight finish)."""
    client = api(ctx)
    last = client.undrain_host(host)
    note(f"Host {host} is active again.")
    if last is not None:
        emit_one(last, output)


def maintenance(
    ctx: typer.Context,
    host: HostArg,
    until: Annotated[str, typer.Option("--until", help="ISO 8601 end, e.g. 2026-12-01T06:00Z")],
    reason: Annotated[str, typer.Option("--reason", help="shown in SLA reports")] = "",
    max_parallel: MaxParallel = DEFAULT_MAX_PARALLEL,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Drain a host, record a maintenance window from now until --until (the SLA excludes
    it), and leave the host in `maintenance` once empty. It is `active` again at --until,
    or earlier with `govcloud host undrain`."""
    client = api(ctx)
    body = validated(
        MaintenanceRequest,
        until=parse_time("--until", until),
        reason=reason,
        max_parallel=max_parallel,
    )
    started = client.maintain_host(host, body)
    note(
        f"Maintenance of {started.subject_name} until {body.until.isoformat()}: "
        f"{started.total} server(s) to move; window {started.maintenance_window}."
    )
    emit_one(follow_drain(ctx, client, started, timeout) if wait else started, output)


def drains(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Argument(metavar="[HOST|DC]", help="only drains of this host or DC")
    ] = None,
    running: Annotated[bool, typer.Option("--running", help="only running drains")] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Drains and data-centre evacuations with their progress, newest first."""
    items = api(ctx).list_drains(subject=subject, running=running or None)
    emit_list(items, DRAIN_COLUMNS, output, empty="No drains.")


def evacuate(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE", help="the data centre to empty")],
    to: Annotated[str, typer.Option("--to", help="the data centre that takes the workload")],
    max_parallel: MaxParallel = DEFAULT_MAX_PARALLEL,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Retire a data centre: set it `draining` (no new placements) and move every server
    to --to, at most --max-parallel at a time. Across data centres a move is cold (stop,
    move, start). Run it again to resume or change the limit."""
    client = api(ctx)
    body = validated(EvacuateRequest, target=to, max_parallel=max_parallel)
    started = client.evacuate_datacentre(code, body)
    note(f"Evacuating {code} to {to}: {started.total} server(s) to move.")
    emit_one(follow_drain(ctx, client, started, timeout) if wait else started, output)
