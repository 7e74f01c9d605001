"""Following a long-running operation from the command line: :func:`follow` polls it on
the :class:`~controlplane.cli.context.CliEnv` clock until it ends, printing a progress
line whenever it changes. Used by ``--wait`` on drains, evacuations, migrations and
consolidations (``cli/fleet.py``, ``cli/consolidate.py``).

The operation runs in the control plane, not in the CLI: a timeout (exit 6) or Ctrl-C
(exit 130) stops following only, and says how to pick it up again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from controlplane.cli.context import cli_env
from controlplane.cli.errors import CliProblem, ExitCode
from controlplane.cli.output import note

T = TypeVar("T")

#: Exit code after Ctrl-C (the shell's convention for SIGINT).
INTERRUPTED = 130


def follow(
    ctx: typer.Context,
    item: T,
    *,
    fetch: Callable[[T], T],
    ongoing: Callable[[T], str | None],
    progress: Callable[[T], str],
    subject: str,
    hint: str,
    timeout_s: float,
) -> T:
    """Poll ``item`` (re-read with ``fetch``) until ``ongoing`` returns None, and return
    the last observation.

    ``progress`` sees every observation and returns its progress line, printed when it
    differs from the last one (it may print more, e.g. each step that ended).
    ``ongoing`` returns the state the operation is still in ("running"), or None once it
    has ended. ``subject`` ("drain of h01") and ``hint`` (how to follow it again, on
    lines of their own) make the timeout and Ctrl-C messages.
    """
    env = cli_env(ctx)
    deadline = env.clock() + timeout_s
    last = ""
    try:
        while True:
            line = progress(item)
            if line != last:
                note(line)
                last = line
            state = ongoing(item)
            if state is None:
                return item
            if env.clock() >= deadline:
                raise CliProblem(
                    f"{subject} still {state} after {timeout_s:.0f} s",
                    hint=f"it carries on in the control plane:\n  {hint}",
                    code=ExitCode.TIMEOUT,
                )
            env.sleep(env.poll_interval_s)
            item = fetch(item)
    except KeyboardInterrupt:
        note(f"Stopped following. The {subject} carries on in the control plane:\n  {hint}")
        raise typer.Exit(INTERRUPTED) from None
