"""``govcloud lab``: the Cloud Open Lab from the command line.

Vendors (``lab vendor``), trial requests and their life (``create``, ``list``, ``show``,
``approve``, ``reject``, ``cancel``, ``extend``), the stages PoC -> Verification ->
Certification (``evidence add``, ``sign-off``) and the catalogue of certified offerings
(``catalog``). Every command prints a table for people and takes ``-o json|yaml``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

import typer

from controlplane.cli import lab_run
from controlplane.cli.context import api
from controlplane.cli.errors import CliProblem, validated
from controlplane.cli.lab_common import TrialArg, emit_detail
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
from controlplane.client import GovcloudClient
from controlplane.domain.lab import (
    CatalogEntry,
    Evidence,
    EvidenceKind,
    Stage,
    Trial,
    TrialDetail,
    TrialEvent,
    TrialInstance,
    TrialState,
    Vendor,
)
from controlplane.schemas.lab import (
    Cancel,
    Decision,
    EvidenceCreate,
    ExtensionCreate,
    SignoffCreate,
    TemplateView,
    TrialCreate,
    VendorCreate,
)

app = typer.Typer(
    help="Cloud Open Lab: vendor trials, PoC -> Verification -> Certification, catalogue.",
    no_args_is_help=True,
)
vendor_app = typer.Typer(help="Vendors of the Lab.", no_args_is_help=True)
evidence_app = typer.Typer(help="Evidence attached to a trial's stages.", no_args_is_help=True)
app.add_typer(vendor_app, name="vendor")
app.add_typer(evidence_app, name="evidence")

NEXT_STEP: dict[TrialState, str] = {
    TrialState.REQUESTED: "a lab operator approves it: `govcloud lab approve {id}`",
    TrialState.APPROVED: "the environment is being activated",
    TrialState.ACTIVE: "create servers in project {project}; attach evidence with "
    "`govcloud lab evidence add {id} ...`",
    TrialState.EXPIRING: "ask for more time with `govcloud lab extend {id} --by 7d`",
    TrialState.EXPIRED: "servers are stopped; `govcloud lab extend {id} --by 7d` revives it "
    "before cleanup",
}


def _fmt_hours(hours: int) -> str:
    days, rest = divmod(hours, 24)
    return f"{days}d{rest}h" if days and rest else (f"{days}d" if days else f"{rest}h")


# -- templates and vendors ------------------------------------------------------------------

TEMPLATE_COLUMNS: list[Column[TemplateView]] = [
    Column("NAME", lambda t: t.name),
    Column("SERVERS", lambda t: t.server_count, "right"),
    Column("DEFAULT TTL", lambda t: t.default_ttl),
    Column("MAX TTL", lambda t: t.max_ttl),
    Column("QUOTA", lambda t: t.limits),
    Column("DESCRIPTION", lambda t: t.description),
]


@app.command("templates")
def templates(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Trial templates: servers, quota and TTLs."""
    emit_list(api(ctx).lab_templates(), TEMPLATE_COLUMNS, output, empty="No templates.")


VENDOR_COLUMNS: list[Column[Vendor]] = [
    Column("CODE", lambda v: v.code),
    Column("NAME", lambda v: v.name),
    Column("ORG", lambda v: v.org_path),
    Column("USERS", lambda v: v.users),
]


@vendor_app.command("list")
def vendor_list(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Vendors enrolled in the Lab."""
    empty = "No vendors yet. Enrol one: `govcloud lab vendor create CODE --name NAME`."
    emit_list(api(ctx).lab_vendors(), VENDOR_COLUMNS, output, empty=empty)


@vendor_app.command("create")
def vendor_create(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="short code, e.g. cht")],
    name: Annotated[str, typer.Option("--name", help="e.g. 'Chunghwa Telecom'")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Enrol a vendor (platform-admins, lab operators): creates openlab/CODE."""
    vendor = api(ctx).create_lab_vendor(validated(VendorCreate, code=code, name=name))
    note(
        f"Enrolled vendor {vendor.code} ({vendor.org_path}). Next: give its people accounts, "
        f"e.g. `govcloud user create {vendor.code}-alice --role member --org {vendor.code}`."
    )
    emit_one(vendor, output)


# -- trials ---------------------------------------------------------------------------------

TRIAL_COLUMNS: list[Column[Trial]] = [
    Column("TRIAL", lambda t: t.id),
    Column("VENDOR", lambda t: t.vendor),
    Column("FOR", lambda t: t.ministry),
    Column("STATE", lambda t: t.state),
    Column("STAGE", lambda t: t.stage),
    Column("TEMPLATE", lambda t: t.template),
    Column("ENDS", lambda t: t.ends_at),
    Column("PENDING", lambda t: "extension" if t.pending_extension else ""),
]


def _next(trial: Trial) -> str:
    text = NEXT_STEP.get(trial.state, "")
    return text.format(id=trial.id, project=trial.project or "-")


@app.command("create")
def create(
    ctx: typer.Context,
    vendor: Annotated[str, typer.Option("--vendor", help="vendor code, e.g. cht")],
    ministry: Annotated[str, typer.Option("--for", help="the ministry it is for, e.g. moe")],
    name: Annotated[str, typer.Option("--name", help="trial name, e.g. dictionary-poc")],
    template: Annotated[str, typer.Option("--template", help="see `govcloud lab templates`")],
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="life from activation, e.g. 14d (template default)")
    ] = None,
    offering: Annotated[
        str | None, typer.Option("--offering", help="what is proven (default: the name)")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Ask for a trial environment; a lab operator approves it."""
    body = validated(
        TrialCreate,
        name=name,
        vendor=vendor,
        ministry=ministry,
        template=template,
        ttl=ttl,
        offering=offering,
        description=description,
    )
    trial = api(ctx).create_trial(body)
    note(f"Requested trial {trial.id} ({_fmt_hours(trial.ttl_hours)}). Next: {_next(trial)}.")
    emit_one(trial, output)


@app.command("list")
def list_trials(
    ctx: typer.Context,
    state: Annotated[TrialState | None, typer.Option("--state")] = None,
    stage: Annotated[Stage | None, typer.Option("--stage")] = None,
    vendor: Annotated[str | None, typer.Option("--vendor")] = None,
    ministry: Annotated[str | None, typer.Option("--for", help="ministry code")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """The trials you may see (vendors: their own; ministries: theirs)."""
    trials = api(ctx).list_trials(state=state, stage=stage, vendor=vendor, ministry=ministry)
    empty = (
        "No trials. Ask for one: `govcloud lab create --vendor V --for M --name N --template T`."
    )
    emit_list(trials, TRIAL_COLUMNS, output, empty=empty)


EVENT_COLUMNS: list[Column[TrialEvent]] = [
    Column("TIME", lambda e: e.at),
    Column("EVENT", lambda e: e.kind),
    Column("BY", lambda e: e.actor),
    Column("MESSAGE", lambda e: e.message),
]
EVIDENCE_COLUMNS: list[Column[Evidence]] = [
    Column("ID", lambda e: e.id, "right"),
    Column("STAGE", lambda e: e.stage),
    Column("KIND", lambda e: e.kind),
    Column("NAME", lambda e: e.name),
    Column("SHA256", lambda e: e.sha256[:16] + "..."),
    Column("BYTES", lambda e: e.size_bytes, "right"),
    Column("RESULTS", lambda e: e.results),
    Column("BY", lambda e: e.added_by),
]
SERVER_COLUMNS: list[Column[TrialInstance]] = [
    Column("SERVER", lambda s: s.name),
    Column("ID", lambda s: s.id),
    Column("FLAVOR", lambda s: s.flavor),
    Column("STATE", lambda s: s.state),
    Column("POWER", lambda s: s.desired_power),
]


@app.command("show")
def show(ctx: typer.Context, trial_id: TrialArg, output: OutputOpt = OutputFormat.TABLE) -> None:
    """A trial: state, stage, members and observers, history (warnings included),
    evidence, sign-offs, servers and usage."""
    emit_detail(api(ctx).get_trial(trial_id), output, _print_detail)


def _print_detail(detail: TrialDetail) -> None:
    trial = detail.trial
    emit_one(
        trial,
        OutputFormat.TABLE,
        extra={"members": detail.members, "observers": detail.observers, "usage": detail.usage},
    )
    console = out_console()
    if detail.instances:
        console.print(table(detail.instances, SERVER_COLUMNS, title="Servers"))
    if detail.evidence:
        console.print(table(detail.evidence, EVIDENCE_COLUMNS, title="Evidence"))
    for sig in detail.signoffs:
        console.print(
            f"Signed off {sig.stage.value} by {sig.signed_by} ({sig.role}) "
            f"at {sig.at:%Y-%m-%d %H:%M}"
        )
    console.print(table(detail.events, EVENT_COLUMNS, title="History"))
    step = _next(trial)
    if step:
        note(f"Next: {step}.")


def _pending(client: GovcloudClient, trial_id: str, verb: str) -> Literal["request", "extension"]:
    """What on the trial awaits a lab operator's decision: the trial request itself, or
    else its pending extension; a CliProblem when nothing does."""
    trial = client.get_trial(trial_id).trial
    if trial.state is TrialState.REQUESTED:
        return "request"
    if trial.pending_extension is not None:
        return "extension"
    raise CliProblem(
        f"nothing to {verb} on trial {trial_id} (it is {trial.state.value}, no extension pending)",
        hint=f"see it with `govcloud lab show {trial_id}`",
    )


@app.command("approve")
def approve(
    ctx: typer.Context,
    trial_id: TrialArg,
    comment: Annotated[str, typer.Option("--comment")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Approve what is pending on TRIAL (lab operators): the trial request, or else its
    pending extension."""
    client = api(ctx)
    body = validated(Decision, comment=comment)
    if _pending(client, trial_id, "approve") == "request":
        approved = client.trial_action(trial_id, "approve", body)
        note(f"Approved {approved.id}: project {approved.project_path} has the trial quota.")
        emit_one(approved, output)
    else:
        decided = client.decide_extension(trial_id, True, body)
        note(
            f"Extended {trial_id} by {_fmt_hours(decided.extension.hours)}; it now ends "
            f"{decided.trial.ends_at:%Y-%m-%d %H:%M} UTC."
        )
        emit_one(decided.trial, output)


@app.command("reject")
def reject(
    ctx: typer.Context,
    trial_id: TrialArg,
    reason: Annotated[str, typer.Option("--reason")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Reject what is pending on TRIAL (lab operators): the request, or its extension."""
    client = api(ctx)
    body = validated(Decision, comment=reason)
    if _pending(client, trial_id, "reject") == "request":
        emit_one(client.trial_action(trial_id, "reject", body), output)
    else:
        emit_one(client.decide_extension(trial_id, False, body).trial, output)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    trial_id: TrialArg,
    reason: Annotated[str, typer.Option("--reason")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Withdraw a request, or end a running trial early (servers stopped, then deleted)."""
    trial = api(ctx).trial_action(trial_id, "cancel", validated(Cancel, reason=reason))
    note(f"Trial {trial.id} is {trial.state.value}.")
    emit_one(trial, output)


@app.command("extend")
def extend(
    ctx: typer.Context,
    trial_id: TrialArg,
    by: Annotated[str, typer.Option("--by", help="e.g. 7d")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Ask for more time; a lab operator approves it (`govcloud lab approve TRIAL`)."""
    ext = api(ctx).request_extension(trial_id, validated(ExtensionCreate, by=by, reason=reason))
    note(
        f"Extension by {_fmt_hours(ext.hours)} requested. Next: a lab operator runs "
        f"`govcloud lab approve {trial_id}`."
    )
    emit_one(ext, output)


def _sign(
    ctx: typer.Context, trial_id: str, stage: Stage | None, comment: str, output: OutputFormat
) -> None:
    result = api(ctx).signoff(trial_id, validated(SignoffCreate, stage=stage, comment=comment))
    trial = result.trial
    if trial.stage is Stage.CERTIFIED:
        note(f"{trial.id} is certified: see it with `govcloud lab catalog {trial.id}`.")
    else:
        note(
            f"Stage {result.signoff.stage.value} signed off; {trial.id} is now at "
            f"{trial.stage.value}. Next: attach its evidence (`govcloud lab evidence add`)."
        )
    emit_one(result.signoff, output)


StageOpt = Annotated[
    Stage | None, typer.Option("--stage", help="the stage you sign off (guards mistakes)")
]


@app.command("sign-off")
def sign_off(
    ctx: typer.Context,
    trial_id: TrialArg,
    stage: StageOpt = None,
    comment: Annotated[str, typer.Option("--comment")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Sign the current stage off (ministry admin: PoC and Verification; lab operator:
    Certification) and move the trial to the next stage."""
    _sign(ctx, trial_id, stage, comment, output)


@app.command("advance", help="Same as `sign-off`.")
def advance(
    ctx: typer.Context,
    trial_id: TrialArg,
    stage: StageOpt = None,
    comment: Annotated[str, typer.Option("--comment")] = "",
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    _sign(ctx, trial_id, stage, comment, output)


# -- evidence -------------------------------------------------------------------------------


def _results(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise CliProblem(
                f"--result {pair!r} is not NAME=NUMBER",
                hint="e.g. --result p95_latency_ms=120 --result connections=150000",
            )
    return out


def _digest(path: Path) -> tuple[str, int]:
    if not path.is_file():
        raise CliProblem(f"no such file: {path}", hint="give the path of the document to attach")
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


@evidence_app.command("add")
def evidence_add(
    ctx: typer.Context,
    trial_id: TrialArg,
    file: Annotated[
        Path | None, typer.Option("--file", help="compute the checksum and size from it")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="default: the file name")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="when there is no --file")] = None,
    size: Annotated[int | None, typer.Option("--size", help="bytes, with --sha256")] = None,
    kind: Annotated[EvidenceKind, typer.Option("--kind")] = EvidenceKind.DOCUMENT,
    uri: Annotated[str | None, typer.Option("--uri", help="where it can be fetched")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="the scenario run it came from")
    ] = None,
    result: Annotated[
        list[str] | None, typer.Option("--result", help="measured NAME=NUMBER (repeatable)")
    ] = None,
    stage: StageOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Attach a document or scenario result to the trial's current stage (by SHA-256)."""
    if file is not None:
        if sha256 is not None or size is not None:
            raise CliProblem(
                "--file computes the checksum and size; do not also give --sha256/--size",
                hint="use either --file PATH or --sha256 HEX --size BYTES",
            )
        sha256, size = _digest(file)
        name = name or file.name
    elif sha256 is None or size is None or name is None:
        raise CliProblem(
            "say what to attach: --file PATH, or --name, --sha256 and --size",
            hint=f"e.g. `govcloud lab evidence add {trial_id} --file report.pdf`",
        )
    body = validated(
        EvidenceCreate,
        kind=kind,
        name=name,
        sha256=sha256.lower(),
        size_bytes=size,
        stage=stage,
        uri=uri,
        run_id=run_id,
        results=_results(result or []),
    )
    evidence = api(ctx).add_evidence(trial_id, body)
    note(
        f"Attached {evidence.kind.value} {evidence.name!r} to stage {evidence.stage.value}. "
        f"Next: the stage's signer runs `govcloud lab sign-off {trial_id}`."
    )
    emit_one(evidence, output)


@evidence_app.command("list")
def evidence_list(
    ctx: typer.Context, trial_id: TrialArg, output: OutputOpt = OutputFormat.TABLE
) -> None:
    """A trial's evidence, by stage."""
    emit_list(api(ctx).list_evidence(trial_id), EVIDENCE_COLUMNS, output, empty="No evidence yet.")


# -- catalogue ------------------------------------------------------------------------------

CATALOG_COLUMNS: list[Column[CatalogEntry]] = [
    Column("TRIAL", lambda c: c.trial_id),
    Column("OFFERING", lambda c: c.offering),
    Column("VENDOR", lambda c: c.vendor_name),
    Column("CERTIFIED FOR", lambda c: c.certified_for),
    Column("CERTIFIED", lambda c: c.certified_at),
    Column("EVIDENCE", lambda c: len(c.evidence), "right"),
    Column("RESULTS", lambda c: c.results),
]


@app.command("catalog")
def catalog(
    ctx: typer.Context,
    trial_id: Annotated[
        str | None, typer.Argument(metavar="[TRIAL]", help="show one entry in full")
    ] = None,
    vendor: Annotated[str | None, typer.Option("--vendor")] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Certified offerings any ministry may reuse without re-testing."""
    client = api(ctx)
    if trial_id is None:
        empty = "No certified offerings yet."
        emit_list(client.lab_catalog(vendor), CATALOG_COLUMNS, output, empty=empty)
        return
    emit_detail(client.lab_catalog_entry(trial_id), output, _print_entry)


def _print_entry(entry: CatalogEntry) -> None:
    emit_one(entry.model_copy(update={"evidence": [], "signoffs": []}), OutputFormat.TABLE)
    out_console().print(table(entry.evidence, EVIDENCE_COLUMNS, title="Evidence"))


lab_run.register(app)  # scenario runs, sizing, promotion (cli/lab_run.py)
