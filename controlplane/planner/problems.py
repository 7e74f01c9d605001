"""Planner input errors: every problem names the file, the line, the field and the value.

One :class:`PlanInputError` carries all problems of a file at once (in file order, the
first 20 in its message), so a person fixes a file in one pass. It is an
:class:`~controlplane.domain.fileproblems.InvalidFile` with the stable code
``planner.invalid_input``; :data:`Problem` is the domain's
:class:`~controlplane.domain.fileproblems.FileProblem`.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.domain.fileproblems import FileProblem, InvalidFile

#: One thing wrong with an input file, at ``file:line`` (1-based), in ``field``.
Problem = FileProblem

#: How many problems the message lists (``details.problems`` has them all).
SHOWN = 20


class PlanInputError(InvalidFile):
    """An input file of the planner is invalid; ``problems`` lists every problem."""

    code = "planner.invalid_input"

    def __init__(self, filename: str, problems: Iterable[FileProblem]) -> None:
        super().__init__(filename, problems, title=filename, shown=SHOWN)
