"""``govcloud user`` (create, list, whoami, rotate-token, set-role, delete) and the
top-level ``govcloud whoami``."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.config import TOKEN_ENV, load_config, resolve, save_config
from controlplane.cli.context import api, cli_env
from controlplane.cli.errors import validated
from controlplane.cli.output import Column, OutputFormat, OutputOpt, emit_list, emit_one, note
from controlplane.domain.auth import User, UserRole
from controlplane.schemas.user import UserCreate, UserToken, UserUpdate

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
    show_token(created, output)


def show_token(issued: UserToken, output: OutputFormat) -> None:
    """Print a user with its new token, which the API shows only this once."""
    if output is OutputFormat.TABLE:
        emit_one(issued.user, output, extra={"token": issued.token})
        note(
            f"The token is shown only this once. {issued.user.name} logs in with "
            "`govcloud login --url URL --token TOKEN`."
        )
    else:
        emit_one(issued, output)


NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the user's login name")]


@app.command("rotate-token")
def rotate_token(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="whose token (default: yours)")
    ] = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Replace a token (yours, or of a user you manage); the old one stops working.

    The new token is printed once. Rotating your own saved token saves the new one in
    your config file too.
    """
    client = api(ctx)
    me = client.whoami().name
    issued = client.rotate_token(name or me)
    show_token(issued, output)
    if issued.user.name != me:
        return
    env = cli_env(ctx)
    conn = resolve(env.environ)
    if conn.token_source == str(conn.path):
        save_config(conn.path, load_config(conn.path).model_copy(update={"token": issued.token}))
        note(f"Your new token is saved in {conn.path}.")
    else:
        note(f"Your old token no longer works: set {TOKEN_ENV} to the new one.")


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    name: NameArg,
    role: Annotated[UserRole, typer.Argument(metavar="ROLE", help="the user's new role")],
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Give a user you manage another role (never one above what you may grant, never
    taking the last platform-admin's)."""
    user = api(ctx).update_user(name, validated(UserUpdate, role=role))
    emit_one(user, output)
    note(f"{user.name} is now {user.role.value}; their token stays valid.")


@app.command("delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete a user you manage (not yourself, never the last platform-admin); their
    token stops working and the audit trail keeps their name."""
    api(ctx).delete_user(name)
    note(f"Deleted user {name}.")
