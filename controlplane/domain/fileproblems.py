"""Problems in input files: every problem names the file, the line, the field and what is
wrong, and one error carries all problems of a file at once (in file order), so a person
fixes a file in one pass.

Owns :class:`FileProblem` and :class:`InvalidFile`, the base of the planner's
``PlanInputError`` and metering's ``PriceTableError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.domain.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One thing wrong with an input file, at ``file:line`` (1-based), in ``field``."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        field = f" field '{self.field}':" if self.field else ""
        return f"{self.file}:{self.line}:{field} {self.message}"


class InvalidFile(InvalidRequest):
    """An input file is invalid; ``problems`` lists every problem, in file order.

    The message is ``{title} is invalid:`` and one line per problem (at most ``shown``
    of them, then how many more); ``details.problems`` has them all.
    """

    def __init__(
        self,
        filename: str,
        problems: Iterable[FileProblem],
        *,
        title: str,
        code: str | None = None,
        shown: int | None = None,
    ) -> None:
        self.filename = filename
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.field)))
        listed = self.problems if shown is None else self.problems[:shown]
        more = len(self.problems) - len(listed)
        text = "\n".join(str(p) for p in listed) + (f"\n... and {more} more" if more else "")
        super().__init__(
            f"{title} is invalid:\n{text}",
            code=code,
            problems=[
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in self.problems
            ],
        )
