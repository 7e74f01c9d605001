"""``govcloud demo``: a whole private cloud on this machine, built and used through the API.

Owns the demo's orchestration: it starts the control plane (``govcloud-api`` on a fresh
SQLite file in a work directory, a free 127.0.0.1 port and a generated admin token), enrols
every host of three data centres as a real ``govcloud-agent`` process on the libvirt test
driver (one bootstrap token per host), seeds the organisation tree, catalogue and users of
:mod:`controlplane.cli.demo_data`, has each ministry's admin provision its servers, waits
until they run and prints what went where and how full each host is.

The control plane runs as a subprocess, not a thread: the CLI may reach the API only
through :mod:`controlplane.client` (an import-linter contract), and a separate process is
also what a real deployment looks like. :class:`Supervisor` owns every child process and
stops them all (agents first, then the API; SIGTERM, then SIGKILL) on success, on error,
on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.status import Status

from controlplane.cli import demo_data as data
from controlplane.cli.errors import CliProblem, ExitCode
from controlplane.cli.host import UTILISATION
from controlplane.cli.lab_run import GROUP_COLUMNS
from controlplane.cli.output import Column, err_console, out_console, table
from controlplane.cli.plan import print_sizing
from controlplane.cli.sla import print_tables as print_sla
from controlplane.client import ApiError, ApiUnreachable, GovcloudClient
from controlplane.domain.auth import Role
from controlplane.domain.host import Host
from controlplane.domain.instance import Instance, InstanceState
from controlplane.domain.lab import LAB_ORG, TrialState
from controlplane.domain.metering import Month
from controlplane.lab.runs import LabRun
from controlplane.lab.scenario import RunState, Scenario
from controlplane.planner.hostmodel import BUILTIN
from controlplane.planner.sizing import SizingResult, SizingTargets
from controlplane.planner.sizing import size as size_hardware
from controlplane.schemas.catalog import DataCentreCreate, FlavorCreate, ImageCreate
from controlplane.schemas.host import BootstrapTokenCreate
from controlplane.schemas.instance import InstanceCreate
from controlplane.schemas.lab import Decision, TrialCreate, VendorCreate
from controlplane.schemas.org import OrgCreate
from controlplane.schemas.sla import SlaReport
from controlplane.schemas.user import UserCreate

S = InstanceState

#: Files and directories the demo owns inside a work directory (wiped for a fresh start).
OWNED = ("govcloud.db", "govcloud.db-wal", "govcloud.db-shm", "hosts", "logs")
#: Settings of the demo's control plane: short long-polls so that everything stops fast.
API_ENV = {
    "GOVCLOUD_PENDING_RETRY_INTERVAL_S": "2",
    "GOVCLOUD_HEARTBEAT_INTERVAL_S": "5",
    "GOVCLOUD_MAX_POLL_WAIT_S": "3",
}
AGENT_POLL_WAIT_S = 3.0
AGENT_HEARTBEAT_S = 5.0
#: How long stopping may take before SIGKILL (a long-poll in flight ends within its wait).
AGENT_GRACE_S = AGENT_POLL_WAIT_S + 5
API_GRACE_S = 8.0


class DemoFailed(CliProblem):
    """The demo could not complete (details and the log to read are in the message)."""

    def __init__(self, message: str, hint: str = "", code: ExitCode = ExitCode.API_ERROR) -> None:
        super().__init__(message, hint=hint, code=code)


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo."""

    workdir: Path | None = None
    serve: bool = False
    hosts_per_dc: int = 3
    #: Longest wait for each phase (API up, hosts registered, servers running).
    timeout_s: float = 90.0


@dataclass
class DemoResult:
    """What the demo built (for tests, and for ``--serve`` to print)."""

    url: str
    admin_token: str
    workdir: Path
    user_tokens: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    hosts: list[Host] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: This month's SLA report of every ministry, as the platform admin sees it.
    sla: SlaReport | None = None
    #: The Lab story: the scenario run of the vendor trial, and the sizing from it.
    lab_run: LabRun | None = None
    #: Tokens of the Lab story's users (the vendor's engineer, the lab operator).
    lab_tokens: dict[str, str] = field(default_factory=dict)
    sizing: SizingResult | None = None


# -- child processes ----------------------------------------------------------------------


@dataclass
class Child:
    """One supervised process and the log it writes."""

    name: str
    kind: str  # "api" | "agent"
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        """The end of its log, for error messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts child processes and guarantees they are all gone when it exits."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(self, name: str, kind: str, argv: list[str], log: Path, env: dict[str, str]) -> Child:
        """Start ``argv`` in its own session (a terminal's Ctrl-C reaches only us; we stop
        the children in order), output to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        child = Child(name, kind, proc, log)
        self.children.append(child)
        return child

    def check(self, kind: str | None = None) -> None:
        """Raise :class:`DemoFailed` if a child (of ``kind``) has exited."""
        for child in self.children:
            if (kind is None or child.kind == kind) and child.proc.poll() is not None:
                raise DemoFailed(
                    f"{child.name} exited unexpectedly with status {child.proc.returncode}; "
                    f"last lines of {child.log}:\n{child.tail()}",
                    hint=f"read {child.log} for the whole story",
                )

    def alive(self, kind: str) -> list[Child]:
        """Children of ``kind`` still running."""
        return [c for c in self.children if c.kind == kind and c.proc.poll() is None]

    def stop(self, kind: str, grace_s: float) -> None:
        """SIGTERM every child of ``kind`` at once, SIGKILL what is left after ``grace_s``."""
        running = self.alive(kind)
        for child in running:
            with suppress(ProcessLookupError):
                child.proc.terminate()
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    child.proc.kill()
                child.proc.wait()

    def stop_all(self) -> None:
        """Agents first (so they do not see their control plane vanish), then the API."""
        self.stop("agent", grace_s=AGENT_GRACE_S)
        self.stop("api", grace_s=API_GRACE_S)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_exc: object) -> None:
        with _signals_ignored():  # a second Ctrl-C must not leave children behind
            self.stop_all()


def _command(script: str, module: str) -> list[str]:
    """The console script installed next to this Python, else ``python -c`` its ``run``."""
    installed = Path(sys.executable).with_name(script)
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-c", f"import sys; from {module} import run; sys.exit(run())"]


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without any GOVCLOUD_* setting (never touch a real deployment's
    database or identity by accident), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCLOUD_")}
    return env | extra


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for the (bounded) duration of the cleanup."""
    try:
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so the cleanup in ``finally`` blocks runs."""

    def _raise(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the demo -----------------------------------------------------------------------------


class Demo:
    """One run of the demo; :meth:`run` does everything in order."""

    def __init__(
        self, options: DemoOptions, sup: Supervisor, workdir: Path, console: Console
    ) -> None:
        self.options = options
        self.sup = sup
        self.workdir = workdir
        self.console = console
        self.admin_token = f"gcu_demo_{secrets.token_urlsafe(24)}"
        self.url = ""
        self.began = time.monotonic()
        self._status: Status | None = None
        self._progress = ""
        self.result = DemoResult(url="", admin_token=self.admin_token, workdir=workdir)

    @contextmanager
    def phase(self, title: str) -> Iterator[None]:
        """Print a step with how long it took."""
        started = time.monotonic()
        with self.console.status(f"{title}...") as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None
        took = time.monotonic() - started
        self.result.timings[title] = took
        self.console.print(f"[green]✓[/] {escape(title)} [dim]({took:.1f} s)[/]")

    def run(self) -> DemoResult:
        """Build the cloud, provision, report."""
        with self.phase("Starting the control plane"):
            self.start_api()
        admin = GovcloudClient(self.url, self.admin_token)
        try:
            with self.phase("Creating data centres, flavors, images, organisations and users"):
                self.seed(admin)
            hosts = self.options.hosts_per_dc * len(data.DATACENTRES)
            with self.phase(f"Enrolling {hosts} hosts (one govcloud-agent process each)"):
                self.enrol_hosts(admin)
            with self.phase(f"Provisioning {len(data.SERVERS)} servers as the ministry admins"):
                created = self.provision()
            with self.phase("Waiting for the agents to build them"):
                self.wait_running(admin, created)
            self.result.instances = sorted(
                admin.iter_instances(), key=lambda i: (i.org_path, i.name)
            )
            self.result.hosts = sorted(admin.list_hosts(), key=lambda h: (h.datacentre, h.name))
            with self.phase("Computing this month's SLA report"):
                month = str(Month.of(datetime.now(UTC)))
                self.result.sla = admin.sla_report(month, everything=True)
            with self.phase("Cloud Open Lab: a vendor trial, a scenario run, a sizing report"):
                self.lab_story(admin)
        finally:
            admin.close()
        self.result.timings["total"] = time.monotonic() - self.began
        return self.result

    # -- phases ---------------------------------------------------------------------------

    def start_api(self) -> None:
        """``govcloud-api`` on a fresh database and a free port; wait until it answers."""
        port = _free_port()
        self.url = self.result.url = f"http://127.0.0.1:{port}"
        env = _clean_env(
            API_ENV
            | {
                "GOVCLOUD_DATABASE_URL": f"sqlite:///{self.workdir / 'govcloud.db'}",
                "GOVCLOUD_ADMIN_TOKEN": self.admin_token,
            }
        )
        argv = [*_command("govcloud-api", "controlplane.api.serve"), "--port", str(port)]
        self.sup.spawn("control plane", "api", argv, self.workdir / "logs" / "api.log", env)
        with GovcloudClient(self.url, self.admin_token, timeout_s=5) as probe:
            self._until(lambda: _answers(probe), "the control plane to answer")

    def seed(self, admin: GovcloudClient) -> None:
        """Catalogue, organisation tree and users, all through the API as the admin."""
        for dc in data.DATACENTRES:
            admin.create_datacentre(
                DataCentreCreate(code=dc.code, name=dc.name, location=dc.location)
            )
        for name, (vcpus, ram, disk, text) in data.FLAVORS.items():
            admin.create_flavor(
                FlavorCreate(name=name, vcpus=vcpus, ram_mib=ram, disk_gib=disk, description=text)
            )
        for name, (file, size, min_ram, min_disk, text) in data.IMAGES.items():
            admin.create_image(
                ImageCreate(
                    name=name,
                    path=f"{data.IMAGE_DIR}/{file}",
                    size_mib=size,
                    min_ram_mib=min_ram,
                    min_disk_gib=min_disk,
                    description=text,
                )
            )
        for ministry, (name, agencies) in data.ORG_TREE.items():
            admin.create_org(OrgCreate(code=ministry, name=name, parent=data.ROOT))
            for agency, (agency_name, projects) in agencies.items():
                admin.create_org(OrgCreate(code=agency, name=agency_name, parent=ministry))
                for project, project_name in projects.items():
                    admin.create_org(OrgCreate(code=project, name=project_name, parent=agency))
            user = data.admin_of(ministry)
            created = admin.create_user(
                UserCreate(name=user, role=Role.MINISTRY_ADMIN, organisation=ministry)
            )
            self.result.user_tokens[user] = created.token
        auditor = admin.create_user(
            UserCreate(name=data.AUDITOR, role=Role.AUDITOR, organisation=data.ROOT)
        )
        self.result.user_tokens[data.AUDITOR] = auditor.token

    def enrol_hosts(self, admin: GovcloudClient) -> None:
        """A bootstrap token and an agent process per host, all started at once."""
        names: list[str] = []
        for dc in data.DATACENTRES:
            for index in range(1, self.options.hosts_per_dc + 1):
                name = f"{dc.code}-h{index:02d}"
                token = admin.create_bootstrap_token(
                    BootstrapTokenCreate(datacentre=dc.code, ttl_hours=1)
                )
                config = self._agent_config(name, dc.host, token.token)
                argv = [*_command("govcloud-agent", "agents.main"), "--config", str(config)]
                log = self.workdir / "logs" / f"agent-{name}.log"
                self.sup.spawn(f"agent {name}", "agent", argv, log, _clean_env({}))
                names.append(name)
        expected = set(names)

        def registered() -> bool:
            return expected <= {h.name for h in admin.list_hosts()}

        self._until(registered, f"all {len(names)} hosts to register")

    def _agent_config(self, name: str, spec: data.HostSpec, token: str) -> Path:
        state = self.workdir / "hosts" / name
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = {
            "control_plane_url": self.url,
            "bootstrap_token": token,
            "name": name,
            "capacity": {"vcpus": spec.vcpus, "ram_mib": spec.ram_mib, "disk_gib": spec.disk_gib},
            "traits": list(spec.traits),
            "state_dir": str(state),
            "heartbeat_interval_s": AGENT_HEARTBEAT_S,
            "poll_wait_s": AGENT_POLL_WAIT_S,
        }
        path = state / "agent.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds a token
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(settings, handle, sort_keys=False)
        return path

    def provision(self) -> list[Instance]:
        """Each ministry's admin creates that ministry's servers."""
        clients: dict[str, GovcloudClient] = {}
        created: list[Instance] = []
        try:
            for spec in data.SERVERS:
                user = data.admin_of(spec.ministry)
                if user not in clients:
                    clients[user] = GovcloudClient(self.url, self.result.user_tokens[user])
                created.append(
                    clients[user].create_instance(
                        InstanceCreate(
                            name=spec.name,
                            project=spec.project,
                            flavor=spec.flavor,
                            image=spec.image,
                            datacentre=spec.dc,
                        )
                    )
                )
        finally:
            for client in clients.values():
                client.close()
        return created

    def wait_running(self, admin: GovcloudClient, created: list[Instance]) -> None:
        """Until every placeable server is RUNNING; an ERROR fails the demo at once."""
        placeable = {spec.name for spec in data.SERVERS if spec.placeable}
        ids = {i.id for i in created if i.name in placeable}

        def all_running() -> bool:
            seen = [i for i in admin.iter_instances() if i.id in ids]
            failed = [i for i in seen if i.state is S.ERROR]
            if failed:
                first = failed[0]
                raise DemoFailed(
                    f"{first.name} on {first.host_name} went to ERROR: {first.fault}",
                    hint=f"read {self.workdir / 'logs'} (agent-{first.host_name}.log)",
                )
            counts = Counter(i.state.value for i in seen)
            self._progress = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            if self._status is not None:
                self._status.update(f"Waiting for the agents to build them: {self._progress}")
            return counts.get(S.RUNNING.value, 0) == len(ids)

        self._until(all_running, f"{len(ids)} servers to reach RUNNING")

    def lab_story(self, admin: GovcloudClient) -> None:
        """Chunghwa Telecom trials a dictionary service for the Ministry of Education: the
        Lab approves it, the vendor runs a peak-hour scenario on the simulated hosts (the
        agents emit its synthetic load), and the measured usage sizes the hardware."""
        code, name = data.LAB_VENDOR
        admin.create_lab_vendor(VendorCreate(code=code, name=name))
        tokens = {}
        for user, role, org in (
            (data.LAB_VENDOR_USER, Role.MEMBER, code),
            (data.LAB_OPERATOR, Role.LAB_OPERATOR, LAB_ORG),
        ):
            tokens[user] = admin.create_user(
                UserCreate(name=user, role=role, organisation=org)
            ).token
            self.result.lab_tokens[user] = tokens[user]
        with (
            GovcloudClient(self.url, tokens[data.LAB_VENDOR_USER]) as vendor,
            GovcloudClient(self.url, tokens[data.LAB_OPERATOR]) as operator,
        ):
            trial = vendor.create_trial(TrialCreate(vendor=code, **data.LAB_TRIAL))
            operator.trial_action(trial.id, "approve", Decision(comment="demo"))
            self._until(
                lambda: vendor.get_trial(trial.id).trial.state is TrialState.ACTIVE,
                f"trial {trial.id} to become active",
            )
            run = vendor.start_lab_run(trial.id, Scenario.model_validate(data.LAB_SCENARIO))

            def finished() -> bool:
                nonlocal run
                run = vendor.lab_run(run.id)
                self._progress = f"run {run.state.value}, {run.samples} sample(s)"
                if self._status is not None:
                    self._status.update(f"Cloud Open Lab: {self._progress}")
                return not run.state.active

            self._until(finished, f"scenario run {run.id} to finish")
            self.result.lab_run = run
            if run.state is not RunState.COMPLETED:
                raise DemoFailed(f"the Lab's scenario run ended {run.state.value}: {run.message}")
            measured = vendor.lab_measurements(trial.id)
        self.result.sizing = size_hardware(
            measured,
            BUILTIN,
            SizingTargets.model_validate(data.LAB_SIZING),
            [],
        )

    # -- helpers --------------------------------------------------------------------------

    def _until(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` while every child is alive, up to the timeout."""
        deadline = time.monotonic() + self.options.timeout_s
        while True:
            self.sup.check()
            try:
                if ready():
                    return
            except ApiUnreachable:
                pass  # still starting
            if time.monotonic() >= deadline:
                raise DemoFailed(
                    f"timed out after {self.options.timeout_s:g} s waiting for {what}"
                    + (f" ({self._progress})" if self._progress else ""),
                    hint=f"the logs are in {self.workdir / 'logs'}",
                    code=ExitCode.TIMEOUT,
                )
            time.sleep(0.2)


def _answers(client: GovcloudClient) -> bool:
    client.whoami()
    return True


# -- reports ------------------------------------------------------------------------------


def _ministry_project(inst: Instance) -> str:
    parts = inst.org_path.split("/")
    return f"{parts[1]}/{inst.project}" if len(parts) > 1 else inst.project


PLACEMENT: list[Column[Instance]] = [
    Column("INSTANCE", lambda i: i.name),
    Column("MINISTRY/PROJECT", _ministry_project),
    Column("FLAVOR", lambda i: i.flavor),
    Column("DC", lambda i: i.datacentre or i.requested_datacentre),
    Column("HOST", lambda i: i.host_name),
    Column("STATE", lambda i: i.state),
]


def print_report(result: DemoResult, console: Console) -> None:
    """What went where, why anything is pending, and how full each host is."""
    console.print(table(result.instances, PLACEMENT, title="What went where"))
    for inst in result.instances:
        if inst.state is S.PENDING:
            console.print(
                f"[yellow]{escape(inst.name)} is PENDING:[/] {escape(inst.pending_reason or '')}"
            )
    per_host = Counter(i.host_name for i in result.instances if i.host_name)
    columns: list[Column[Host]] = [
        Column("HOST", lambda h: h.name),
        Column("DC", lambda h: h.datacentre),
        Column("STATE", lambda h: h.state),
        Column("INSTANCES", lambda h: per_host.get(h.name, 0), "right"),
        *UTILISATION,
    ]
    console.print(table(result.hosts, columns, title="Per-host utilisation (used/usable)"))
    if result.sla is not None:
        print_sla(result.sla, console)
    if result.lab_run is not None:
        run = result.lab_run
        console.print(
            f"Cloud Open Lab: scenario {escape(run.name)} of trial {escape(run.trial_id)}: "
            f"{run.running}/{run.vms} VMs ran, {run.samples} samples"
        )
        console.print(table(run.groups, GROUP_COLUMNS, title="Measured usage per group"))
    if result.sizing is not None:
        print_sizing(result.sizing)


def print_serve_info(result: DemoResult, console: Console) -> None:
    """How to use the running demo from another terminal."""
    console.print(f"\n[bold]Control plane:[/] {result.url}   (OpenAPI: {result.url}/docs)")
    console.print(f"[bold]Admin token:[/]   {result.admin_token}")
    console.print("\nIn another terminal:\n")
    console.print(
        f"  export GOVCLOUD_URL={result.url} GOVCLOUD_TOKEN={result.admin_token}",
        soft_wrap=True,
        highlight=False,
    )
    console.print("  govcloud server list\n")
    users: list[Column[tuple[str, str]]] = [
        Column("USER", lambda u: u[0]),
        Column("TOKEN (GOVCLOUD_TOKEN=...)", lambda u: u[1]),
    ]
    everyone = result.user_tokens | result.lab_tokens
    console.print(table(sorted(everyone.items()), users, title="Other users"))
    console.print(f"Work directory (database, logs): {result.workdir}")


# -- entry points -------------------------------------------------------------------------


def _prepare(workdir: Path | None) -> tuple[Path, bool]:
    """The work directory (a new temporary one unless given) and whether it is temporary.
    A given directory keeps everything except what the demo owns, which is wiped."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="govcloud-demo-")), True
    workdir = workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return workdir, False


def run_demo(
    options: DemoOptions,
    *,
    console: Console | None = None,
    serving: Callable[[DemoResult, Supervisor], None] | None = None,
) -> DemoResult:
    """Run the demo; with ``options.serve``, call ``serving`` (default: wait for Ctrl-C)
    before stopping. Every child process is gone when this returns or raises."""
    console = console or err_console()
    workdir, temporary = _prepare(options.workdir)
    succeeded = False
    try:
        with _sigterm_as_interrupt(), Supervisor() as sup:
            result = Demo(options, sup, workdir, console).run()
            print_report(result, out_console())
            console.print(f"Demo built in {result.timings['total']:.1f} s.")
            if options.serve:
                print_serve_info(result, out_console())
                (serving or _serve_until_interrupted)(result, sup)
            console.print("Stopping agents and control plane...")
        succeeded = True
        return result
    finally:
        if temporary and succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not succeeded:
            console.print(f"Logs kept in {workdir / 'logs'}")


def _serve_until_interrupted(_result: DemoResult, sup: Supervisor) -> None:
    """Keep running until Ctrl-C (or SIGTERM); fail if the control plane dies."""
    console = err_console()
    console.print("Serving. Press Ctrl-C to stop.")
    warned: set[str] = set()
    try:
        while True:
            sup.check("api")
            for child in sup.children:
                gone = child.kind == "agent" and child.proc.poll() is not None
                if gone and child.name not in warned:
                    console.print(f"[yellow]{escape(child.name)} exited; see {child.log}[/]")
                    warned.add(child.name)
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("\nInterrupted.")


def demo(
    serve: Annotated[
        bool, typer.Option("--serve", help="keep the cloud running until Ctrl-C")
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="keep database and logs here (default: a temp dir)"),
    ] = None,
    hosts_per_dc: Annotated[
        int, typer.Option("--hosts-per-dc", min=1, max=20, help="simulated hosts per DC")
    ] = 3,
    timeout: Annotated[
        float, typer.Option("--timeout", min=5, help="longest wait for each phase, seconds")
    ] = 90.0,
) -> None:
    """Run a whole private cloud locally: control plane, 3 data centres of simulated hosts
    (real govcloud-agent processes on the libvirt test driver), ministries, users and VMs."""
    options = DemoOptions(
        workdir=workdir, serve=serve, hosts_per_dc=hosts_per_dc, timeout_s=timeout
    )
    try:
        run_demo(options)
    except (ApiError, ApiUnreachable) as err:
        raise DemoFailed(f"the demo's control plane refused a step: {err}") from err
