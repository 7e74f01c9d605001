"""``govcloud login``, ``logout`` and ``config show``: saving and inspecting the URL and token.

``login`` checks the token against the API (``whoami``) before saving it, so a typo is
caught at once rather than on the next command.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import BaseModel

from controlplane.cli.config import (
    TOKEN_ENV,
    URL_ENV,
    CliConfig,
    config_path,
    load_config,
    mask,
    resolve,
    save_config,
)
from controlplane.cli.context import cli_env
from controlplane.cli.errors import CliProblem
from controlplane.cli.output import OutputFormat, OutputOpt, emit_one, note


def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="base URL of the control plane")],
    token: Annotated[
        str | None,
        typer.Option("--token", help="your bearer token (prompted, hidden, when omitted)"),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="check the token with the API before saving it")
    ] = True,
) -> None:
    """Save the control plane URL and your token in the config file (mode 0600)."""
    env = cli_env(ctx)
    if not url.startswith(("http://", "https://")):
        raise CliProblem(
            f"--url must start with http:// or https:// (got {url!r})",
            hint="e.g. `govcloud login --url http://127.0.0.1:8774 --token TOKEN`",
        )
    url = url.rstrip("/")
    secret = token or typer.prompt("Token", hide_input=True)
    if verify:
        with env.client_factory(url, secret) as client:
            who = client.whoami()
        note(f"Logged in to {url} as {who.name} ({who.role.value}, scope {who.scope}).")
    path = config_path(env.environ)
    save_config(path, CliConfig(url=url, token=secret))
    note(f"Saved to {path}.")
    overridden = [name for name in (URL_ENV, TOKEN_ENV) if env.environ.get(name)]
    if overridden:
        note(f"Note: {' and '.join(overridden)} set in your environment take precedence.")


def logout(ctx: typer.Context) -> None:
    """Forget the saved token (the URL is kept)."""
    path = config_path(cli_env(ctx).environ)
    saved = load_config(path)
    if saved.token is None:
        note(f"No token saved in {path}.")
        return
    save_config(path, saved.model_copy(update={"token": None}))
    note(f"Token removed from {path}.")


class ConfigView(BaseModel):
    """What ``config show`` prints (the token masked)."""

    path: str
    url: str | None
    url_source: str
    token: str
    token_source: str


config_app = typer.Typer(help="Show the CLI configuration (change it with `govcloud login`).")


@config_app.command("show")
def show(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
    """The URL and token in use, and where each comes from."""
    conn = resolve(cli_env(ctx).environ)
    emit_one(
        ConfigView(
            path=str(conn.path),
            url=conn.url,
            url_source=conn.url_source,
            token=mask(conn.token),
            token_source=conn.token_source,
        ),
        output,
    )
