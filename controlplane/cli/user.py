"""``govcloud user`` (create, list, whoami) and the top-level ``govcloud whoami``."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.context import api
from controlplane.cli.errors import validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.domain.auth import User, UserRole
from controlplane.schemas.user import UserCreate

app = typer.Typer(help="Users, their roles and scopes.", no_args_is_help=True)

COLUMNS: list[Column[User]] = [
    Column("NAME", lambda u: u.name),
    Column("ROLE", lambda u: u.role),
    Column("ORGANISATION", lambda u: u.organisation),
    Column("SCOPE", lambda u: u.org_path),
]


@app.command("whoami")
def whoami(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Who the API thinks you are: name, role and scope."""
    emit_one(api(ctx).whoami(), output)


@app.command("list")
def list_users(ctx: typer.Context, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Users in your scope."""
    users = sorted(api(ctx).list_users(), key=lambda u: (u.org_path, u.name))
    emit_list(users, COLUMNS, output, empty="No users in your scope.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="login name, e.g. moi-admin")],
    role: Annotated[UserRole, typer.Option("--role", help="what the user may do")],
    org: Annotated[str, typer.Option("--org", help="code of the organisation they belong to")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Create a user; its token is printed once, so hand it over now."""
    created = api(ctx).create_user(validated(UserCreate, name=name, role=role, organisation=org))
    if output is OutputFormat.TABLE:
        emit_one(created.user, output, extra={"token": created.token})
        note(
            f"The token is shown only this once. {created.user.name} logs in with "
            "`govcloud login --url URL --token TOKEN`."
        )
    else:
        emit_one(created, output)
