"""YAML text -> validated pydantic model, with every problem located by file, line, field.

The text is composed into YAML nodes first (``yaml.compose``) so a validation error's
location (``models.1.ram_gib``) maps back to the line it came from; duplicate keys, which
YAML would silently resolve to the last one, are problems too. Owns the node-location
helpers (:func:`node_at`, :func:`key_line`, :func:`duplicate_keys`) and
:func:`load_yaml_model`, which the planner's input files and metering's price tables use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from controlplane.domain.fileproblems import FileProblem, InvalidFile

M = TypeVar("M", bound=BaseModel)

#: Builds the error for a file and its problems (e.g. ``PlanInputError``).
ErrorFactory = Callable[[str, Iterable[FileProblem]], InvalidFile]


def line_of(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


def node_at(root: Node, loc: Sequence[int | str]) -> Node:
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


def key_line(node: Node, key: str) -> int | None:
    """The line of ``key`` in mapping ``node`` (None: not a mapping, or no such key)."""
    if isinstance(node, MappingNode):
        for k, _ in node.value:
            if getattr(k, "value", None) == key:
                return line_of(k)
    return None


def duplicate_keys(
    node: Node, filename: str, *, note: str = "first on line", path: str = ""
) -> list[FileProblem]:
    """Keys given twice in any mapping of the document (``duplicate key ({note} N)``)."""
    problems: list[FileProblem] = []
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            line = line_of(key)
            field = f"{path}.{name}" if path else name
            if name in seen:
                problems.append(
                    FileProblem(filename, line, field, f"duplicate key ({note} {seen[name]})")
                )
            else:
                seen[name] = line
            problems += duplicate_keys(value, filename, note=note, path=field)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            field = f"{path}.{i}" if path else str(i)
            problems += duplicate_keys(item, filename, note=note, path=field)
    return problems


def _compose(text: str, filename: str, error: ErrorFactory, expected: str) -> tuple[Node, Any]:
    """The document's root node and its data (a mapping), or ``error``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise error(
            filename, [FileProblem(filename, line, "", f"not valid YAML: {reason}")]
        ) from exc
    if root is None or not isinstance(data, dict):
        line = line_of(root) if root is not None else 1
        got = "an empty file" if root is None else f"{type(data).__name__} {data!r}"[:80]
        raise error(filename, [FileProblem(filename, line, "", f"expected {expected}; got {got}")])
    return root, data


def load_yaml_model(
    text: str,
    filename: str,
    model: type[M],
    *,
    expected: str,
    error: ErrorFactory,
    unknown_field: str = "unknown field",
    duplicate_note: str = "first on line",
) -> M:
    """Parse ``text`` (YAML) into ``model``; raise ``error(filename, problems)`` naming the
    line, field and value of every problem. ``expected`` describes the top level for the
    message about a file that is empty or not a mapping; ``unknown_field`` is the message
    for a field the model does not have."""
    root, data = _compose(text, filename, error, expected)
    problems = duplicate_keys(root, filename, note=duplicate_note)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            field = ".".join(str(p) for p in loc)
            line = line_of(node_at(root, loc))
            kind = err.get("type")
            message = str(err.get("msg", "invalid"))
            if kind == "extra_forbidden" and loc:
                line = key_line(node_at(root, loc[:-1]), str(loc[-1])) or line
                message = unknown_field
            elif kind != "missing" and loc:  # a document-level rule: not the whole file
                message = f"{message} (got {err.get('input')!r})"
            problems.append(FileProblem(filename, line, field, message))
        raise error(filename, problems) from exc
    if problems:
        raise error(filename, problems)
    return parsed
