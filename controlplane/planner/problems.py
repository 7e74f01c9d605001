"""Planner input errors: every problem names the file, the line, the field and the value.

One :class:`PlanInputError` carries all problems of a file at once (in file order), so a
person fixes a file in one pass. It is a :class:`~controlplane.domain.errors.InvalidRequest`
with the stable code ``planner.invalid_input``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.domain.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, at ``file:line`` (1-based), in ``field``."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        field = f" field '{self.field}':" if self.field else ""
        return f"{self.file}:{self.line}:{field} {self.message}"


class PlanInputError(InvalidRequest):
    """An input file of the planner is invalid; ``problems`` lists every problem."""

    code = "planner.invalid_input"

    def __init__(self, filename: str, problems: Iterable[Problem]) -> None:
        self.filename = filename
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.field)))
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        text = "\n".join(str(p) for p in shown) + (f"\n... and {more} more" if more else "")
        super().__init__(
            f"{filename} is invalid:\n{text}",
            problems=[
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in self.problems
            ],
        )
