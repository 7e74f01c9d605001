"""``govcloud host enrol`` and ``govcloud host decommission``: host lifecycle through Ansible.

Owns the orchestration around :mod:`controlplane.provisioning`: read the inventory, issue
one short-lived bootstrap token per host that the control plane does not know yet (through
the API client), run the ``enrol`` playbook while printing each host's task results as
they happen, wait until every enrolled host is ACTIVE in the API, and end with a summary
table. A failure names the host, the task and the error output and exits 1 with a
``Next:`` hint. Bootstrap tokens live ``--timeout`` + 5 minutes: a token whose host
failed before registering expires unused (the API cannot revoke tokens yet).

A host's power model for consolidation (``govcloud_idle_watts`` / ``govcloud_peak_watts``
inventory variables) is validated before anything runs and set once the host is ACTIVE.

``--simulated`` runs the same playbook with ``govcloud_simulated=true`` (for
``ansible_connection=local`` inventories): the agent runs on the libvirt test driver with
the given capacity, kept alive by the role's supervisor when systemd is not PID 1.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.markup import escape
from rich.text import Text

from controlplane.cli.config import resolve
from controlplane.cli.context import api, cli_env
from controlplane.cli.errors import CliProblem, ExitCode
from controlplane.cli.output import (
    Column,
    OutputFormat,
    OutputOpt,
    dump,
    err_console,
    out_console,
    plain,
    table,
)
from controlplane.client import ApiError, GovcloudClient
from controlplane.domain.host import HostState
from controlplane.provisioning.artifact import build_agent_wheel
from controlplane.provisioning.events import PlaybookResult, TaskEvent, TaskStart, TaskStatus
from controlplane.provisioning.inventory import InventoryHost, inventory_hosts
from controlplane.provisioning.runner import ProvisioningError, run_playbook
from controlplane.schemas.host import BootstrapTokenCreate, HostUpdate

#: Extra lifetime of a bootstrap token beyond the run's timeout.
TOKEN_GRACE_S = 300.0

InventoryOpt = Annotated[
    Path,
    typer.Option(
        "--inventory", "-i", help="Ansible inventory (INI or YAML) of the hosts", exists=True
    ),
]


class EnrolResult(BaseModel):
    """How one host's enrolment ended (one row of the summary)."""

    host: str
    datacentre: str
    #: enrolled, already-enrolled, failed, not-active, decommissioned
    result: str
    host_id: str = ""
    state: str = ""
    changed: int = 0
    task: str = ""
    error: str = ""
    #: The power model set from the inventory (``idle-peak W``), if any.
    power: str = ""


SUMMARY: list[Column[EnrolResult]] = [
    Column("HOST", lambda r: r.host),
    Column("DC", lambda r: r.datacentre),
    Column("RESULT", lambda r: r.result),
    Column("STATE", lambda r: r.state),
    Column("CHANGED", lambda r: r.changed, "right"),
    Column("HOST ID", lambda r: r.host_id),
    Column("POWER", lambda r: r.power),
    Column("FAILED TASK", lambda r: r.task),
]

#: Inventory variables of a host's power model -> HostUpdate fields.
POWER_VARS = {"govcloud_idle_watts": "idle_watts", "govcloud_peak_watts": "peak_watts"}


class Progress:
    """Prints each host's task results as they arrive (stderr), current task in a spinner."""

    def __init__(self, title: str) -> None:
        self.console = err_console()
        self.status = self.console.status(title)

    def __enter__(self) -> Progress:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.__exit__(None, None, None)

    def __call__(self, event: TaskEvent | TaskStart) -> None:
        if isinstance(event, TaskStart):
            self.status.update(f"task: {escape(event.task)}")
            return
        style = {
            TaskStatus.OK: "green",
            TaskStatus.CHANGED: "yellow",
            TaskStatus.SKIPPED: "dim",
            TaskStatus.FAILED: "bold red",
            TaskStatus.UNREACHABLE: "bold red",
        }[event.status]
        status = event.status.value + (" (ignored)" if event.ignored else "")
        line = Text.assemble((f"{event.host:<20} ", "bold"), (f"{status:<12} ", style), event.task)
        self.console.print(line, soft_wrap=True, highlight=False)
        if event.error and not event.ignored:
            for err_line in event.error.splitlines()[:20]:
                self.console.print(Text(f"{'':<20} {err_line}", style="red"), soft_wrap=True)


def _run(name: str, title: str, inventory: Path, **kwargs: Any) -> PlaybookResult:
    try:
        with Progress(title) as progress:
            return run_playbook(name, inventory, on_event=progress, **kwargs)
    except ProvisioningError as err:
        raise CliProblem(str(err), hint="check the inventory and the playbook path") from err


def _hosts(inventory: Path) -> list[InventoryHost]:
    try:
        hosts = inventory_hosts(inventory)
    except ProvisioningError as err:
        raise CliProblem(
            str(err), hint="fix the inventory; `ansible-inventory -i FILE --list`"
        ) from err
    if not hosts:
        raise CliProblem(f"inventory {inventory} has no hosts", hint="add hosts to it")
    return hosts


def _known(client: GovcloudClient, name: str) -> Any:
    try:
        return client.get_host(name)
    except ApiError as err:
        if err.status == 404:
            return None
        raise


def _power(host: InventoryHost) -> HostUpdate | None:
    """The power model in ``host``'s inventory variables (None: none given), validated as
    ``govcloud host update`` validates it."""
    given = {field: host.vars[var] for var, field in POWER_VARS.items() if var in host.vars}
    if not given:
        return None
    if len(given) < len(POWER_VARS):  # one alone would be checked against stored values
        missing = next(var for var, field in POWER_VARS.items() if field not in given)
        raise CliProblem(
            f"host {host.name}: {missing} is missing; give both {' and '.join(POWER_VARS)}",
            hint="set both variables in the inventory, or neither",
        )
    try:
        return HostUpdate.model_validate(given)
    except ValidationError as err:
        problem = err.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "peak_watts"
        var = next(v for v, f in POWER_VARS.items() if f == field)
        raise CliProblem(
            f"host {host.name}: {var}={given.get(field)!r}: {problem['msg']}",
            hint="fix the variable in the inventory (watts: 0 <= idle <= peak <= 20000, peak > 0)",
        ) from err


def _set_power(client: GovcloudClient, row: EnrolResult, power: HostUpdate) -> None:
    """Give an enrolled host its power model; a refusal fails the host's row."""
    try:
        host = client.update_host(row.host_id, power)
    except ApiError as err:
        row.result, row.task, row.error = "failed", "set the power model", str(err)
        return
    idle, peak = (f"{w:g}" if w is not None else "?" for w in (host.idle_watts, host.peak_watts))
    row.power = f"{idle}-{peak} W"


def _agent_wheel(hosts: list[InventoryHost], given: Path | None, workdir: Path) -> str:
    """The wheel to install, when some host installs one (built from this checkout)."""
    if given is not None:
        return str(given.expanduser().absolute())
    if all(h.vars.get("govcloud_agent_install") == "existing" for h in hosts):
        return ""
    err_console().print("Building the agent wheel from this checkout...")
    try:
        return str(build_agent_wheel(workdir))
    except ProvisioningError as err:
        raise CliProblem(str(err), hint="pass --agent-wheel FILE") from err


def _fail_summary(results: list[EnrolResult], verb: str) -> None:
    failed = [r for r in results if r.result in ("failed", "not-active")]
    if not failed:
        return
    console = err_console()
    for r in failed:
        where = f" at task '{r.task}'" if r.task else ""
        console.print(f"[bold red]Error:[/] {escape(r.host)} {verb} failed{escape(where)}:")
        for line in (r.error or "(no error output)").splitlines()[:30]:
            console.print(Text(f"  {line}"), soft_wrap=True)
    raise CliProblem(
        f"{len(failed)} of {len(results)} host(s) failed; the others are shown above",
        hint="fix the cause named above and run the same command again (it is idempotent: "
        "finished hosts are left as they are)",
        code=ExitCode.API_ERROR,
    )


def _emit(results: list[EnrolResult], output: OutputFormat, title: str) -> None:
    if output is OutputFormat.TABLE:
        out_console().print(table(results, SUMMARY, title=title))
    else:
        dump(plain(results), output)


def enrol(
    ctx: typer.Context,
    inventory: InventoryOpt,
    dc: Annotated[
        str | None,
        typer.Option("--dc", help="data centre to join (per host: govcloud_datacentre var)"),
    ] = None,
    simulated: Annotated[
        bool,
        typer.Option("--simulated", help="agent on the libvirt test driver (no hardware)"),
    ] = False,
    vcpus: Annotated[int | None, typer.Option("--vcpus", min=1, help="simulated vCPUs")] = None,
    ram_mib: Annotated[int | None, typer.Option("--ram-mib", min=1, help="simulated RAM")] = None,
    disk_gib: Annotated[
        int | None, typer.Option("--disk-gib", min=0, help="simulated disk")
    ] = None,
    agent_url: Annotated[
        str | None,
        typer.Option("--agent-url", help="control-plane URL as the hosts reach it"),
    ] = None,
    agent_wheel: Annotated[
        Path | None,
        typer.Option("--agent-wheel", exists=True, help="agent wheel (default: built here)"),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds to wait for each host")
    ] = 120.0,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Enrol the inventory's hosts: install and start the agent with a one-time token
    (playbooks/enrol.yml), then wait until each host is ACTIVE. Safe to run again."""
    client = api(ctx)
    env = cli_env(ctx)
    hosts = _hosts(inventory)
    dcs: dict[str, str] = {}
    tokens: dict[str, str] = {}
    known: dict[str, Any] = {}
    power = {h.name: model for h in hosts if (model := _power(h)) is not None}
    for h in hosts:
        host_dc = str(h.vars.get("govcloud_datacentre") or dc or "")
        if not host_dc:
            raise CliProblem(
                f"no data centre for host {h.name}",
                hint="pass --dc CODE or set govcloud_datacentre for the host in the inventory",
            )
        dcs[h.name] = host_dc
        existing = _known(client, h.name)
        if existing is not None:
            known[h.name] = existing
            if existing.datacentre != host_dc:
                raise CliProblem(
                    f"host {h.name} is already enrolled in data centre {existing.datacentre}, "
                    f"not {host_dc}",
                    hint="decommission it first to move it (`govcloud host decommission`)",
                )
    for h in hosts:  # tokens only once every host checked out
        if h.name not in known:
            try:
                body = BootstrapTokenCreate(
                    datacentre=dcs[h.name], ttl_hours=(timeout + TOKEN_GRACE_S) / 3600
                )
            except ValidationError as err:
                raise CliProblem(f"host {h.name}: {err.errors()[0]['msg']}") from err
            tokens[h.name] = client.create_bootstrap_token(body).token
    extravars: dict[str, Any] = {
        "govcloud_control_plane_url": agent_url or client.base_url,
        "govcloud_api_url": client.base_url,
        "govcloud_bootstrap_tokens": tokens,
        "govcloud_register_timeout_s": int(timeout),
        "govcloud_controller_agent_bin": str(Path(sys.executable).with_name("govcloud-agent")),
    }
    if simulated:
        extravars["govcloud_simulated"] = True
    for key, value in (("vcpus", vcpus), ("ram_mib", ram_mib), ("disk_gib", disk_gib)):
        if value is not None:
            extravars[f"govcloud_capacity_{key}"] = value
    with tempfile.TemporaryDirectory(prefix="govcloud-wheel-") as workdir:
        if not simulated:
            wheel = _agent_wheel(hosts, agent_wheel, Path(workdir))
            if wheel:
                extravars["govcloud_agent_wheel"] = wheel
        result = _run(
            "enrol",
            f"Enrolling {len(hosts)} host(s)",
            inventory,
            extravars=extravars,
            timeout_s=int(timeout * 3 + 600),
        )
    results = _enrol_results(client, env.clock, env.sleep, hosts, dcs, known, result, timeout)
    for row in results:
        if row.host in power and row.result in ("enrolled", "already-enrolled"):
            _set_power(client, row, power[row.host])
    _emit(results, output, "Enrolment")
    if result.output_tail and not any(r.task for r in results):
        for r in results:
            if r.result == "failed" and not r.error:
                r.error = result.output_tail
    _fail_summary(results, "enrolment")


def _enrol_results(
    client: GovcloudClient,
    clock: Any,
    sleep: Any,
    hosts: list[InventoryHost],
    dcs: dict[str, str],
    known: dict[str, Any],
    result: PlaybookResult,
    timeout: float,
) -> list[EnrolResult]:
    results: list[EnrolResult] = []
    deadline = clock() + timeout
    for h in hosts:
        outcome = result.hosts.get(h.name)
        row = EnrolResult(host=h.name, datacentre=dcs[h.name], result="failed")
        if outcome is not None:
            row.changed = outcome.changed
        if outcome is None or not outcome.succeeded:
            row.task = outcome.failed_task if outcome else ""
            row.error = outcome.error if outcome else result.output_tail
            found = _known(client, h.name)
            if found is not None:  # registered although the run failed: say so
                row.host_id, row.state = found.id, found.state.value
                row.error += (
                    f"\n(the host is registered as {found.id}, state {found.state.value}; "
                    "its agent keeps its credential, so a rerun continues from here)"
                )
            results.append(row)
            continue
        while True:
            found = _known(client, h.name)
            if found is not None and found.state is HostState.ACTIVE:
                break
            if clock() >= deadline:
                break
            sleep(0.5)
        if found is None or found.state is not HostState.ACTIVE:
            row.result = "not-active"
            row.task = "wait until ACTIVE in the control plane"
            row.state = found.state.value if found is not None else "absent"
            row.error = (
                f"the playbook finished but the control plane shows the host as {row.state} "
                f"after {timeout:g} s"
            )
        else:
            row.result = "already-enrolled" if h.name in known else "enrolled"
            row.host_id, row.state = found.id, found.state.value
        results.append(row)
    return results


def decommission(
    ctx: typer.Context,
    inventory: InventoryOpt,
    simulated: Annotated[
        bool, typer.Option("--simulated", help="the hosts were enrolled with --simulated")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="even though instances still use the host")
    ] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Retire the inventory's hosts (playbooks/decommission.yml): stop and remove the agent
    and its credential, then mark each host disabled. Refuses hosts still in use."""
    client = api(ctx)
    conn = resolve(cli_env(ctx).environ)
    hosts = _hosts(inventory)
    result = _run(
        "decommission",
        f"Decommissioning {len(hosts)} host(s)",
        inventory,
        extravars={
            "govcloud_api_url": client.base_url,
            "govcloud_force": force,
            **({"govcloud_simulated": True} if simulated else {}),
        },
        envvars={"GOVCLOUD_TOKEN": conn.token or ""},
    )
    results = []
    for h in hosts:
        outcome = result.hosts.get(h.name)
        found = _known(client, h.name)
        row = EnrolResult(
            host=h.name,
            datacentre=found.datacentre if found is not None else "",
            result="decommissioned" if outcome is not None and outcome.succeeded else "failed",
            host_id=found.id if found is not None else "",
            state=found.state.value if found is not None else "absent",
            changed=outcome.changed if outcome is not None else 0,
            task=outcome.failed_task if outcome is not None else "",
            error=(outcome.error if outcome is not None else "") or result.output_tail,
        )
        results.append(row)
    _emit(results, output, "Decommission")
    _fail_summary(results, "decommission")
