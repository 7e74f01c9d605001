"""``govcloud server``: create and operate instances (VMs), optionally ``--wait``-ing with live
progress through PENDING -> SCHEDULED -> BUILDING -> RUNNING.

A server is named on the command line by its id or, when unambiguous in your scope, by
its name. Also reachable as ``govcloud instance`` (the API's word for it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice
from typing import Annotated

import typer
from rich.markup import escape

from controlplane.cli import fleet
from controlplane.cli.context import api, cli_env
from controlplane.cli.errors import CliProblem, ExitCode, validated
from controlplane.cli.output import (
    Column,
    OutputFormat,
    OutputOpt,
    emit_list,
    emit_one,
    err_console,
    note,
)
from controlplane.cli.schedule import explanation_lines
from controlplane.cli.server_group import app as group_app
from controlplane.client import GovcloudClient, WaitTimeout, wait_for_instance
from controlplane.domain.datacentre import PlacementPolicy
from controlplane.domain.instance import Instance, InstanceAction, InstanceState
from controlplane.schemas.instance import InstanceCreate, InstanceResize

app = typer.Typer(help="Servers (instances, VMs).", no_args_is_help=True)
app.add_typer(group_app, name="group")

S = InstanceState
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEFAULT_TIMEOUT_S = 300.0


def placement(inst: Instance) -> str:
    """``dc/host`` once placed, the requested DC (if any) before."""
    if inst.host_name:
        return f"{inst.datacentre}/{inst.host_name}"
    return f"{inst.requested_datacentre}/-" if inst.requested_datacentre else "-"


#: Longest remark in a table cell; `server show` has the whole text.
REMARK_MAX = 80


def remark(inst: Instance) -> str | None:
    """Why it waits or what went wrong (shortened for tables)."""
    text = inst.pending_reason or inst.fault
    if text and len(text) > REMARK_MAX:
        return text[: REMARK_MAX - 1] + "…"
    return text


COLUMNS: list[Column[Instance]] = [
    Column("ID", lambda i: i.id),
    Column("NAME", lambda i: i.name),
    Column("PROJECT", lambda i: i.project),
    Column("FLAVOR", lambda i: i.flavor),
    Column("DC", lambda i: i.datacentre or i.requested_datacentre),
    Column("HOST", lambda i: i.host_name),
    Column("STATE", lambda i: i.state),
    Column("NOTE", remark),
]

ACTION_COLUMNS: list[Column[InstanceAction]] = [
    Column("ACTION", lambda a: a.action),
    Column("ACTOR", lambda a: a.actor),
    Column("STARTED", lambda a: a.started_at),
    Column("FINISHED", lambda a: a.finished_at),
    Column("RESULT", lambda a: a.result),
    Column("MESSAGE", lambda a: a.message),
    Column("REQUEST ID", lambda a: a.request_id),
]

Ref = Annotated[str, typer.Argument(metavar="SERVER", help="id, or name if unambiguous")]
Wait = Annotated[
    bool, typer.Option("--wait", help="follow progress until done (exit 6 on timeout)")
]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help="seconds --wait waits at most")]


def resolve(client: GovcloudClient, ref: str) -> str:
    """The id of the server ``ref`` names (an id, or a name unique in the caller's scope)."""
    if _UUID.match(ref):
        return ref
    matches = list(islice(client.iter_instances(name=ref), 10))
    if not matches:
        raise CliProblem(
            f"no server named {ref!r} in your scope",
            hint="list them with `govcloud server list`",
            code=ExitCode.NOT_FOUND,
        )
    if len(matches) > 1:
        ids = ", ".join(m.id for m in matches)
        raise CliProblem(
            f"{len(matches)} servers are named {ref!r}: {ids}", hint="name one by its id"
        )
    return matches[0].id


def follow(
    ctx: typer.Context,
    client: GovcloudClient,
    start: Instance,
    targets: frozenset[InstanceState],
    *,
    timeout_s: float,
) -> Instance:
    """Show each state change of ``start`` live (on stderr) until it reaches ``targets``.

    ERROR, or a deletion while waiting for something else, is a failure (exit 1); a
    timeout raises :class:`~controlplane.client.WaitTimeout` (exit 6).
    """
    env = cli_env(ctx)
    console = err_console()
    failures = (
        frozenset({S.ERROR})
        if S.DELETED in targets
        else frozenset({S.ERROR, S.DELETING, S.DELETED})
    )
    began = env.clock()
    last: list[Instance] = [start]
    console.print(f"[bold]{escape(start.name)}[/] ({start.id}): {start.state.value}")
    _explain(start, None)
    awaited = " or ".join(sorted(t.value for t in targets))

    with console.status(f"waiting for {awaited}") as status:

        def on_update(current: Instance) -> None:
            before = last[-1]
            if current.state is not before.state:
                where = f"  on {placement(current)}" if current.host_name else ""
                console.print(
                    f"  {before.state.value} -> [bold]{current.state.value}[/]"
                    f"{escape(where)}  [dim]{env.clock() - began:.1f}s[/]"
                )
            _explain(current, before)
            last.append(current)
            status.update(f"{current.state.value}; waiting for {awaited}")

        final = wait_for_instance(
            client,
            start.id,
            lambda i: i.state in targets or i.state in failures,
            awaited=awaited,
            timeout_s=timeout_s,
            interval_s=env.poll_interval_s,
            on_update=on_update,
            clock=env.clock,
            sleep=env.sleep,
        )
    if final.state in failures:
        raise CliProblem(
            f"{final.name} ({final.id}) is {final.state.value}"
            + (f": {final.fault}" if final.fault else ""),
            hint=f"see what happened with `govcloud server actions {final.id}`",
            code=ExitCode.API_ERROR,
        )
    return final


def _explain(current: Instance, before: Instance | None) -> None:
    """Print the pending reason when it first appears or changes."""
    fresh = before is None or before.pending_reason != current.pending_reason
    if current.state is S.PENDING and current.pending_reason and fresh:
        note(f"  pending: {current.pending_reason}")


def _finish(
    ctx: typer.Context,
    client: GovcloudClient,
    inst: Instance,
    message: str,
    output: OutputFormat,
    wait: tuple[frozenset[InstanceState], float] | None,
) -> None:
    """Common tail of every mutating command: note, optional wait, print the server."""
    note(message)
    if wait is not None:
        targets, timeout_s = wait
        if inst.state not in targets:
            inst = follow(ctx, client, inst, targets, timeout_s=timeout_s)
    elif inst.state is S.PENDING and inst.pending_reason:
        note(f"Pending: {inst.pending_reason}")
    emit_one(inst, output)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. web-01 (with --count: web-01-1 ..)")],
    project: Annotated[str, typer.Option("--project", "-p", help="project code")],
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="`govcloud flavor list`")],
    image: Annotated[str, typer.Option("--image", "-i", help="`govcloud image list`")],
    dc: Annotated[
        str | None, typer.Option("--dc", help="pin to this data centre (default: any)")
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", help="create N servers as one placement decision")
    ] = 1,
    partial: Annotated[
        bool,
        typer.Option("--partial", help="with --count: place what fits, keep the rest PENDING"),
    ] = False,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="server group (name or id)")
    ] = None,
    trait: Annotated[
        list[str] | None, typer.Option("--trait", help="required host trait (repeatable)")
    ] = None,
    forbid_trait: Annotated[
        list[str] | None, typer.Option("--forbid-trait", help="forbidden trait (repeatable)")
    ] = None,
    policy: Annotated[
        PlacementPolicy | None, typer.Option("--policy", help="override the DC's policy")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Create a server (or --count N); with --wait, follow it until RUNNING."""
    client = api(ctx)
    body = validated(
        InstanceCreate,
        name=name,
        project=project,
        flavor=flavor,
        image=image,
        datacentre=dc,
        count=count if count != 1 else None,
        all_or_nothing=False if partial else None,
        server_group=group,
        required_traits=trait,
        forbidden_traits=forbid_trait,
        policy=policy,
    )
    if count == 1:
        inst = client.create_instance(body)
        where = f" on {placement(inst)}" if inst.host_name else ""
        message = f"Created {inst.name} ({inst.id}): {inst.state.value}{where}."
        wait_for = (frozenset({S.RUNNING}), timeout) if wait else None
        _finish(ctx, client, inst, message, output, wait_for)
        return
    created = client.create_instances(body)
    placed = sum(i.state is not S.PENDING for i in created)
    note(f"Created {len(created)} servers: {placed} placed, {len(created) - placed} pending.")
    if wait:
        for inst in created:
            follow(ctx, client, inst, frozenset({S.RUNNING}), timeout_s=timeout)
        created = [client.get_instance(i.id) for i in created]
    emit_list(created, COLUMNS, output, empty="Nothing created.")


@app.command("list")
def list_servers(
    ctx: typer.Context,
    state: Annotated[
        InstanceState | None,
        typer.Option("--state", case_sensitive=False, help="only this state (DELETED too)"),
    ] = None,
    dc: Annotated[str | None, typer.Option("--dc", help="only in this data centre")] = None,
    host: Annotated[str | None, typer.Option("--host", help="only on this host")] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="only in this ministry, agency or project")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="only with this name")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="show at most this many")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Servers in your scope, oldest first (all pages unless --limit)."""
    found = api(ctx).iter_instances(
        state=state,
        datacentre=dc,
        host=host,
        org=org,
        name=name,
        page_size=min(limit, 1000) if limit else None,
    )
    servers = list(islice(found, limit) if limit else found)
    empty = (
        "No servers match. Create one with "
        "`govcloud server create NAME -p PROJECT -f FLAVOR -i IMAGE`."
    )
    emit_list(servers, COLUMNS, output, empty=empty)


@app.command("show")
def show(ctx: typer.Context, server: Ref, output: OutputOpt = OutputFormat.TABLE) -> None:
    """One server, with its placement, pending reason or fault, and the scheduler's
    last explanation."""
    client = api(ctx)
    inst = client.get_instance(resolve(client, server))
    if output is not OutputFormat.TABLE or inst.placement is None:
        emit_one(inst, output)
        return
    emit_one(inst.model_copy(update={"placement": None}), output)
    for line in explanation_lines(inst.placement):
        note(line)


@app.command("why")
def why(ctx: typer.Context, server: Ref, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Why the server is where it is, or why it is still PENDING: hosts evaluated,
    rejections per check with examples, and which dimension ran out where."""
    client = api(ctx)
    found = client.instance_placement(resolve(client, server))
    if output is not OutputFormat.TABLE:
        emit_one(found, output)
        return
    where = f"{found.datacentre}/{found.host_name}" if found.host_name else "no host yet"
    note(f"{found.name} ({found.instance_id}): {found.state.value}, {where}")
    if found.explanation is None:
        note(found.pending_reason or "no placement decision recorded")
        return
    for line in explanation_lines(found.explanation):
        note(line)


@app.command("actions")
def actions(ctx: typer.Context, server: Ref, output: OutputOpt = OutputFormat.TABLE) -> None:
    """What was asked of a server, by whom, and how it ended."""
    client = api(ctx)
    emit_list(
        client.instance_actions(resolve(client, server)),
        ACTION_COLUMNS,
        output,
        empty="No actions recorded.",
    )


def _act(
    ctx: typer.Context,
    verb: str,
    call: Callable[[GovcloudClient, str], Instance],
    server: str,
    output: OutputFormat,
    wait: tuple[frozenset[InstanceState], float] | None,
) -> None:
    client = api(ctx)
    inst = call(client, resolve(client, server))
    message = f"{verb.capitalize()} requested for {inst.name} ({inst.id}): {inst.state.value}."
    _finish(ctx, client, inst, message, output, wait)


def _action_command(
    verb: str,
    call: Callable[[GovcloudClient, str], Instance],
    targets: frozenset[InstanceState] | None,
    summary: str,
) -> None:
    """Register ``server <verb>``: start, stop, reboot and delete share one shape; those
    with a state to reach (``targets``) also take --wait/--timeout."""
    if targets is None:

        @app.command(verb, help=summary)
        def act(ctx: typer.Context, server: Ref, output: OutputOpt = OutputFormat.TABLE) -> None:
            _act(ctx, verb, call, server, output, None)

        return
    awaited = "/".join(sorted(t.value for t in targets))

    @app.command(verb, help=f"{summary} With --wait, follow it until {awaited}.")
    def act_and_wait(
        ctx: typer.Context,
        server: Ref,
        wait: Wait = False,
        timeout: Timeout = DEFAULT_TIMEOUT_S,
        output: OutputOpt = OutputFormat.TABLE,
    ) -> None:
        _act(ctx, verb, call, server, output, (targets, timeout) if wait else None)


_action_command("start", GovcloudClient.start_instance, frozenset({S.RUNNING}), "Power on.")
_action_command("stop", GovcloudClient.stop_instance, frozenset({S.STOPPED}), "Power off.")
_action_command("reboot", GovcloudClient.reboot_instance, None, "Reboot a RUNNING server.")
_action_command(
    "delete", GovcloudClient.delete_instance, frozenset({S.DELETED}), "Delete (frees its host)."
)


app.command("migrate")(fleet.migrate)


@app.command("resize")
def resize(
    ctx: typer.Context,
    server: Ref,
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="`govcloud flavor list`")],
    wait: Wait = False,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Give a STOPPED server another flavor, on the host it has (stop it first).

    Quota and host room are taken (or given back) at once; the host's agent then
    redefines the VM with the new vCPU and memory sizes. With --wait, follow it until the
    agent has applied it.
    """
    client = api(ctx)
    body = validated(InstanceResize, flavor=flavor)
    inst = client.resize_instance(resolve(client, server), body.flavor)
    note(
        f"Resize to {inst.flavor} requested for {inst.name} ({inst.id}): "
        f"{inst.resources.describe()}."
    )
    if wait:
        _await_resize(ctx, client, inst, timeout)
    emit_one(inst, output)


def _await_resize(
    ctx: typer.Context, client: GovcloudClient, inst: Instance, timeout_s: float
) -> None:
    """Poll the newest ``resize`` action until it ends (exit 1 unless it succeeded)."""
    env = cli_env(ctx)
    began = env.clock()
    deadline = began + timeout_s
    with err_console().status("waiting for the host to apply the new size"):
        while True:
            mine = [a for a in client.instance_actions(inst.id) if a.action == "resize"][-1:]
            if not mine or mine[0].result != "pending":
                break
            if env.clock() >= deadline:
                raise WaitTimeout(
                    client.get_instance(inst.id), timeout_s, "the host to apply the new size"
                )
            env.sleep(env.poll_interval_s)
    if not mine or mine[0].result != "success":
        result = mine[0].result if mine else "missing"
        message = mine[0].message if mine else ""
        raise CliProblem(
            f"resize of {inst.name} ({inst.id}) ended {result}"
            + (f": {message}" if message else ""),
            hint=f"see what happened with `govcloud server actions {inst.id}`",
            code=ExitCode.API_ERROR,
        )
    note(f"  applied on {placement(inst)}: {inst.flavor}  {env.clock() - began:.1f}s")
