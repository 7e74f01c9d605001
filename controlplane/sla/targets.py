"""SLA targets: service classes (availability, provisioning time) assigned to ministries.

The file format is ``targets.yaml`` next to this module (the packaged default); operators
point ``GOVCLOUD_SLA_TARGETS_FILE`` at their own. :func:`load_targets` parses text (the
caller reads the file) and reports every problem with the file name, line and field as
:class:`TargetsError` (through :func:`controlplane.domain.yamlnodes.load_yaml_model`); a
ministry not listed gets ``default_class``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.domain.fileproblems import FileProblem, InvalidFile
from controlplane.domain.names import Code
from controlplane.domain.yamlnodes import load_yaml_model


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


class TargetsError(InvalidFile):
    """A targets file is invalid; ``details.problems`` lists each one."""

    def __init__(self, filename: str, problems: Iterable[FileProblem]) -> None:
        super().__init__(
            filename, problems, title=f"SLA targets file {filename}", code="sla.targets_invalid"
        )


def load_targets(text: str, filename: str) -> SlaTargets:
    """Parse a targets file's ``text``; :class:`TargetsError` names every problem."""
    return load_yaml_model(
        text,
        filename,
        SlaTargets,
        expected="a mapping with default_class, classes and ministries",
        error=TargetsError,
    )
