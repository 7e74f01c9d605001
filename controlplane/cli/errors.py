"""Exit codes and error reporting for the CLI: one place turns every failure into a message
on stderr, a hint saying what to do next, and a documented exit code (never a traceback).

Commands raise :class:`CliProblem` for local problems (bad input, no configuration); the
client raises :class:`~controlplane.client.ApiError`, :class:`~controlplane.client.ApiUnreachable`
and :class:`~controlplane.client.WaitTimeout`. :func:`report` handles them all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import IntEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from rich.markup import escape

from controlplane.cli.output import err_console
from controlplane.client import ApiError, ApiUnreachable, WaitTimeout


class ExitCode(IntEnum):
    """What ``govcloud`` exits with; scripts can rely on these."""

    OK = 0
    API_ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    UNREACHABLE = 5
    TIMEOUT = 6


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the API refused or failed the request (e.g. quota exceeded); 2 "
    "usage error or invalid input; 3 not found; 4 not logged in, token rejected or not "
    "allowed; 5 control plane unreachable; 6 timed out waiting (--wait)."
)

#: The API's code for a request refused because some organisation level is out of quota.
QUOTA_EXCEEDED = "quota.exceeded"
#: The API's code for a quota policy file with problems (``details.problems``).
POLICY_INVALID = "quota.policy_invalid"

#: Set to 1 to let unexpected exceptions through with their traceback.
DEBUG_ENV = "GOVCLOUD_DEBUG"


class CliProblem(Exception):
    """A problem found by the CLI itself, with the hint and exit code to report."""

    def __init__(self, message: str, *, hint: str = "", code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], **fields: Any) -> M:
    """Build a request model, turning validation errors into a usage problem that names
    each bad field, its value and the rule (the same rules the API applies)."""
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as err:
        problems = []
        for item in err.errors():
            field = ".".join(str(p) for p in item["loc"]) or "input"
            problems.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
        raise CliProblem(
            "invalid input: " + "; ".join(problems),
            hint="fix the value and run the command again; --help shows each option",
        ) from err


def exit_code_of(err: ApiError) -> ExitCode:
    """The exit code for an API error status."""
    if err.code == QUOTA_EXCEEDED:
        return ExitCode.API_ERROR  # refused by policy (403), not an authorisation problem
    if err.status in (401, 403):
        return ExitCode.AUTH
    if err.status == 404:
        return ExitCode.NOT_FOUND
    if err.status in (400, 422):
        return ExitCode.USAGE
    return ExitCode.API_ERROR


def hint_of(err: ApiError) -> str:
    """What to do next after an API error (empty when the message already says it)."""
    if err.status == 401:
        return (
            "log in again with `govcloud login --url URL --token TOKEN`, "
            "or set GOVCLOUD_TOKEN; `govcloud config show` shows what is in use"
        )
    if err.code == QUOTA_EXCEEDED:
        return _quota_hint(err)
    if err.code == POLICY_INVALID:
        return "fix the file and check it again with `govcloud quota apply FILE --dry-run`"
    if err.status == 403:
        return "check your role and scope with `govcloud whoami`; ask an admin of that scope"
    if err.code == "route.not_found":
        return "the server does not know this call; is the URL a govcloud API of this version?"
    if err.status in (400, 422):
        return "fix the value and run the command again; --help shows each option"
    if err.code.endswith("invalid_state"):
        return "see the current state with `govcloud server show ID`"
    if err.status >= 500:
        rid = err.request_id or "shown above"
        return f"the control plane failed; report request id {rid} to the operators"
    return ""


def _items(err: ApiError, key: str) -> list[dict[str, Any]]:
    found = err.details.get(key)
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def _violations(err: ApiError) -> list[dict[str, Any]]:
    return _items(err, "violations")


def _quota_hint(err: ApiError) -> str:
    """Where to look and whom to ask: a ministry's (or the root's) limit is raised by a
    platform-admin, an agency's or a project's by the ministry's admin."""
    violations = _violations(err)
    nodes = [str(v.get("node")) for v in violations if v.get("kind") != "root"] or [
        str(v.get("node")) for v in violations
    ]
    kinds = {v.get("kind") for v in violations}
    who = "a platform admin" if kinds & {"root", "ministry"} else "your ministry admin"
    where = f" (`govcloud quota show {nodes[0]}`)" if nodes else ""
    return f"ask {who} to raise the limit{where}, or delete servers you no longer need"


def _itemised(err: ApiError) -> tuple[str, list[str]]:
    """A summary line and one line per item, for errors that list several things: every
    exhausted quota level, every problem of a policy file (``FILE:LINE: field 'f': ...``)."""
    if err.code == QUOTA_EXCEEDED and (violations := _violations(err)):
        return (
            "quota exceeded; the request was refused and nothing was changed:",
            [f"  - {v.get('message')}" for v in violations],
        )
    if err.code == POLICY_INVALID and (problems := _items(err, "problems")):
        lines = []
        for p in problems:
            field = f" field '{p.get('field')}':" if p.get("field") else ""
            lines.append(f"{p.get('file')}:{p.get('line')}:{field} {p.get('message')}")
        return err.message.split("\n", 1)[0], lines
    return err.message, []


def report(exc: Exception) -> ExitCode:
    """Print ``exc`` for a person (message, details, hint) and return its exit code."""
    if isinstance(exc, ApiError):
        rid = f", request {exc.request_id}" if exc.request_id else ""
        message, lines = _itemised(exc)
        _print("Error", message, f"[{exc.code}{rid}]", hint_of(exc), lines)
        return exit_code_of(exc)
    if isinstance(exc, ApiUnreachable):
        _print(
            "Error",
            str(exc),
            "",
            "check the URL (`govcloud config show`), that the control plane is running "
            "and that this machine can reach it",
        )
        return ExitCode.UNREACHABLE
    if isinstance(exc, WaitTimeout):
        last = exc.last
        hint = f"it keeps going in the background; follow it with `govcloud server show {last.id}`"
        if last.pending_reason:
            hint = (
                "it stays PENDING and is placed automatically when capacity appears "
                f"(`govcloud server show {last.id}` says why); or delete it and choose "
                "a smaller flavor or another data centre"
            )
        _print("Timed out", str(exc), "", hint)
        return ExitCode.TIMEOUT
    if isinstance(exc, CliProblem):
        _print("Error", exc.message, "", exc.hint)
        return exc.code
    _print(
        "Internal error",
        f"{type(exc).__name__}: {exc}",
        "",
        f"this is a bug in the govcloud CLI; rerun with {DEBUG_ENV}=1 for the traceback",
    )
    return ExitCode.API_ERROR


def debug_enabled() -> bool:
    """Whether unexpected exceptions should keep their traceback."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _print(label: str, message: str, where: str, hint: str, lines: Sequence[str] = ()) -> None:
    console = err_console()
    line = f"[bold red]{label}:[/] {escape(message)}"
    if where:
        line += f" [dim]{escape(where)}[/]"
    console.print(line)
    for extra in lines:  # one line each, never wrapped: FILE:LINE stays grep-able
        console.print(escape(extra), soft_wrap=True)
    if hint:
        console.print(f"[yellow]Next:[/] {escape(hint)}")
