"""YAML text -> validated pydantic model, with every problem located by file, line, field.

The text is composed into YAML nodes first (``yaml.compose``) so a validation error's
location (``models.1.ram_gib``) maps back to the line it came from; duplicate keys, which
YAML would silently resolve to the last one, are problems too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from controlplane.planner.problems import PlanInputError, Problem

M = TypeVar("M", bound=BaseModel)


def _node_at(root: Node, loc: Sequence[int | str]) -> Node:
    """The node at ``loc``, or the deepest one on the way there."""
    node = root
    for part in loc:
        if isinstance(node, MappingNode):
            values = [v for k, v in node.value if getattr(k, "value", None) == str(part)]
            if not values:
                return node
            node = values[-1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _key_line(node: Node, key: str) -> int | None:
    if isinstance(node, MappingNode):
        for k, _ in node.value:
            if getattr(k, "value", None) == key:
                return int(k.start_mark.line) + 1
    return None


def _duplicates(node: Node, filename: str, path: str = "") -> list[Problem]:
    """Keys given twice in any mapping of the document."""
    problems: list[Problem] = []
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            line = int(key.start_mark.line) + 1
            field = f"{path}.{name}" if path else name
            if name in seen:
                problems.append(
                    Problem(filename, line, field, f"duplicate key (first on line {seen[name]})")
                )
            else:
                seen[name] = line
            problems += _duplicates(value, filename, field)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicates(item, filename, f"{path}.{i}" if path else str(i))
    return problems


def load_model(text: str, filename: str, model: type[M], *, expected: str) -> M:
    """Parse ``text`` (YAML) into ``model``; raise :class:`PlanInputError` naming file,
    line, field and value of every problem. ``expected`` describes the top level for the
    message about a file that is empty or not a mapping."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise PlanInputError(
            filename, [Problem(filename, line, "", f"not valid YAML: {reason}")]
        ) from exc
    if root is None or not isinstance(data, dict):
        line = int(root.start_mark.line) + 1 if root is not None else 1
        got = "an empty file" if root is None else f"{type(data).__name__} {data!r}"[:80]
        raise PlanInputError(
            filename, [Problem(filename, line, "", f"expected {expected}; got {got}")]
        )
    problems = _duplicates(root, filename)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            field = ".".join(str(p) for p in loc)
            line = int(_node_at(root, loc).start_mark.line) + 1
            kind = err.get("type")
            message = str(err.get("msg", "invalid"))
            if kind == "extra_forbidden" and loc:
                parent = _node_at(root, loc[:-1])
                line = _key_line(parent, str(loc[-1])) or line
                message = "unknown field"
            elif kind != "missing":
                message = f"{message} (got {err.get('input')!r})"
            problems.append(Problem(filename, line, field, message))
        raise PlanInputError(filename, problems) from exc
    if problems:
        raise PlanInputError(filename, problems)
    return parsed
