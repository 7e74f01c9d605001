"""``govcloud``: the root Typer app, its nouns, and the one place errors become exit codes.

Owns :data:`app` (what tests invoke with ``CliRunner``) and :func:`run` (the console
script). :class:`GovcloudGroup` wraps every command: API errors, an unreachable control
plane, timeouts and local problems are printed by :func:`controlplane.cli.errors.report`
with a hint and a documented exit code, never as a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from controlplane.cli import (
    audit,
    dc,
    demo,
    flavor,
    host,
    image,
    lab,
    login,
    maintenance,
    org,
    plan,
    quota,
    schedule,
    server,
    sla,
    usage,
    user,
)
from controlplane.cli.context import cli_env
from controlplane.cli.errors import EXIT_CODES_HELP, debug_enabled, report

HELP = (
    "govcloud: provision and operate VMs in the government's consolidated data centres.\n\n"
    "Start with `govcloud login --url URL --token TOKEN` (or set GOVCLOUD_URL and "
    "GOVCLOUD_TOKEN), or try everything locally with `govcloud demo`. Commands that print "
    "resources take -o json|yaml for scripts."
)


class GovcloudGroup(TyperGroup):
    """The root group: turns failures of any subcommand into a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors, --help, explicit exits: typer reports them
        except Exception as exc:
            if debug_enabled():
                raise
            raise typer.Exit(report(exc)) from None


app = typer.Typer(
    cls=GovcloudGroup,
    help=HELP,
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Set up the invocation's environment (injected by tests, else the real one)."""
    cli_env(ctx)


app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("whoami", help="Who the API thinks you are (same as `user whoami`).")(user.whoami)
app.add_typer(login.config_app, name="config")
app.add_typer(org.app, name="org")
app.add_typer(user.app, name="user")
app.add_typer(dc.app, name="dc")
app.add_typer(host.app, name="host")
app.add_typer(flavor.app, name="flavor")
app.add_typer(image.app, name="image")
app.add_typer(server.app, name="server")
app.command("schedule")(schedule.schedule)
app.add_typer(audit.app, name="audit")
app.add_typer(quota.app, name="quota")
app.add_typer(usage.app, name="usage")
app.add_typer(lab.app, name="lab")
app.add_typer(plan.app, name="plan")
app.add_typer(sla.app, name="sla")
app.add_typer(maintenance.app, name="maintenance")
app.command("demo")(demo.demo)


def run() -> None:
    """Console entry point (``govcloud``)."""
    app(prog_name="govcloud")
