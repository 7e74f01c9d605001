"""YAML input files of the planner -> validated pydantic models.

A thin binding of :func:`controlplane.domain.yamlnodes.load_yaml_model` to
:class:`~controlplane.planner.problems.PlanInputError`: every problem (bad YAML, wrong
top level, duplicate key, failed validation) is located by file, line and field.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from controlplane.domain.yamlnodes import load_yaml_model
from controlplane.planner.problems import PlanInputError

M = TypeVar("M", bound=BaseModel)


def load_model(text: str, filename: str, model: type[M], *, expected: str) -> M:
    """Parse ``text`` (YAML) into ``model``; raise :class:`PlanInputError` naming file,
    line, field and value of every problem. ``expected`` describes the top level for the
    message about a file that is empty or not a mapping."""
    return load_yaml_model(text, filename, model, expected=expected, error=PlanInputError)
