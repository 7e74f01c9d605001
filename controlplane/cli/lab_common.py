"""What the ``govcloud lab`` command modules (``lab.py``, ``lab_run.py``) share: the TRIAL
argument, printing a resource with sections (a table for people, the whole object for
``-o json|yaml``), and turning a local failure into a :class:`CliProblem` with a hint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel

from controlplane.cli.errors import CliProblem
from controlplane.cli.output import OutputFormat, dump, plain
from controlplane.domain.errors import GovcloudError

TrialArg = Annotated[str, typer.Argument(metavar="TRIAL", help="trial id, e.g. cht-dictionary-poc")]

M = TypeVar("M", bound=BaseModel)


def emit_detail(item: M, output: OutputFormat, print_table: Callable[[M], None]) -> None:
    """Print ``item`` in full as JSON/YAML, or as ``print_table`` lays it out for people."""
    if output is not OutputFormat.TABLE:
        dump(plain(item), output)
    else:
        print_table(item)


@contextmanager
def problem(hint: str, *errors: type[Exception], prefix: str = "") -> Iterator[None]:
    """Report ``errors`` (default: any :class:`GovcloudError`) raised inside the block as a
    :class:`CliProblem`: ``prefix`` and the error's message, then ``hint``."""
    caught = errors or (GovcloudError,)
    try:
        yield
    except caught as exc:
        message = exc.message if isinstance(exc, GovcloudError) else str(exc)
        raise CliProblem(prefix + message, hint=hint) from exc
