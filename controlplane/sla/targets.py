"""SLA targets: service classes (availability, provisioning time) assigned to ministries.

The file format is ``targets.yaml`` next to this module (the packaged default); operators
point ``GOVCLOUD_SLA_TARGETS_FILE`` at their own. :func:`load_targets` parses text (the
caller reads the file) and reports every problem with the file name, line and field as
:class:`TargetsError`; a ministry not listed gets ``default_class``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from yaml.nodes import MappingNode, Node

from controlplane.domain.errors import InvalidRequest
from controlplane.domain.names import Code


class ServiceClass(BaseModel):
    """What one class of service promises each month."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", max_length=300)
    availability_pct: float = Field(gt=0, le=100, description="e.g. 99.95")
    provisioning_p95_minutes: float = Field(gt=0, le=10080)


class SlaTargets(BaseModel):
    """Every class, the default one and the ministries' assignments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_class: str
    classes: dict[Code, ServiceClass] = Field(min_length=1)
    ministries: dict[Code, Code] = {}

    @model_validator(mode="after")
    def _classes_exist(self) -> SlaTargets:
        known = ", ".join(sorted(self.classes))
        if self.default_class not in self.classes:
            raise ValueError(f"default_class {self.default_class!r} is not a class ({known})")
        for ministry, name in self.ministries.items():
            if name not in self.classes:
                raise ValueError(f"ministry {ministry!r} has unknown class {name!r} ({known})")
        return self

    def class_of(self, ministry: str) -> tuple[str, ServiceClass]:
        """The class name and its promises for ``ministry``."""
        name = self.ministries.get(ministry, self.default_class)
        return name, self.classes[name]


class TargetsError(InvalidRequest):
    """A targets file is invalid; ``details.problems`` lists each one."""

    def __init__(self, filename: str, problems: Sequence[tuple[int, str, str]]) -> None:
        text = "\n".join(
            f"{filename}:{line}:{f' field {field!r}:' if field else ''} {msg}"
            for line, field, msg in problems
        )
        super().__init__(
            f"SLA targets file {filename} is invalid:\n{text}",
            code="sla.targets_invalid",
            problems=[
                {"file": filename, "line": line, "field": field, "message": msg}
                for line, field, msg in problems
            ],
        )


def _line_of(root: Node | None, loc: Sequence[Any]) -> int:
    node = root
    line = int(root.start_mark.line) + 1 if root is not None else 1
    for part in loc:
        if not isinstance(node, MappingNode):
            break
        match = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
        if not match:
            break
        line = int(match[-1][0].start_mark.line) + 1
        node = match[-1][1]
    return line


def load_targets(text: str, filename: str) -> SlaTargets:
    """Parse a targets file's ``text``; :class:`TargetsError` names every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else 1
        raise TargetsError(filename, [(line, "", f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise TargetsError(
            filename, [(1, "", "expected a mapping with default_class, classes and ministries")]
        )
    try:
        return SlaTargets.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            field = ".".join(str(p) for p in loc)
            message = str(err.get("msg", "invalid"))
            if err.get("type") not in ("missing", "value_error"):
                message = f"{message} (got {err.get('input')!r})"
            problems.append((_line_of(root, loc), field, message))
        raise TargetsError(filename, problems) from exc
