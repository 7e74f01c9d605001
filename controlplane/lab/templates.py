"""Trial templates: what a trial environment is made of, as files.

A template (``templates/<name>.yaml``) names the servers a trial is expected to run
(flavor and count per role), its networks (descriptive for now), its quota (a class from
``quotas/policies`` with optional lower overrides) and its default and maximum TTL.
Problems are reported with the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.names import Name, Text
from controlplane.lab.duration import parse_hours
from quotas import DIMENSIONS, QuotaClass

TEMPLATE_DIR = Path(__file__).parent / "templates"

TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerGroup(_Strict):
    """``count`` servers of ``flavor`` playing ``role``."""

    role: Name
    flavor: Name
    count: int = Field(ge=1, le=1000)


class Network(_Strict):
    """A network the trial expects (descriptive: not provisioned yet)."""

    name: Name
    cidr: Annotated[str, StringConstraints(pattern=r"^[0-9./]{7,18}$")]
    description: Text = ""


class TemplateFile(_Strict):
    """The YAML document, as written."""

    description: Text
    default_ttl: str
    max_ttl: str
    quota_class: str = "openlab-trial"
    quota: dict[str, int] = Field(default_factory=dict, description="lower overrides")
    servers: list[ServerGroup] = Field(min_length=1)
    networks: list[Network] = Field(default_factory=list)


class Template(BaseModel):
    """A validated template, with its TTLs in hours and its effective quota limits."""

    model_config = ConfigDict(frozen=True)

    name: TemplateName
    description: str
    default_ttl_hours: int
    max_ttl_hours: int
    quota_class: str
    limits: dict[str, int] = Field(description="the project's limits: the class, overridden")
    soft_threshold: float
    servers: list[ServerGroup]
    networks: list[Network]

    @property
    def server_count(self) -> int:
        """How many servers the template expects."""
        return sum(group.count for group in self.servers)


def _problem(filename: str, field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"template {filename}: {field}: {message}",
        code="lab.template_invalid",
        file=filename,
        field=field,
    )


def parse_template(
    text: str, filename: str, name: str, classes: Mapping[str, QuotaClass]
) -> Template:
    """Validate one template file's ``text``; ``classes`` are the known quota classes."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _problem(filename, "(document)", f"not valid YAML: {exc}") from exc
    try:
        doc = TemplateFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise _problem(filename, field, f"{first['msg']} (got {first.get('input')!r})") from exc
    default_ttl = parse_hours(doc.default_ttl, field=f"{filename}: default_ttl")
    max_ttl = parse_hours(doc.max_ttl, field=f"{filename}: max_ttl")
    if default_ttl > max_ttl:
        raise _problem(filename, "default_ttl", f"{doc.default_ttl} exceeds max_ttl {doc.max_ttl}")
    quota_class = classes.get(doc.quota_class)
    if quota_class is None:
        known = ", ".join(sorted(classes))
        raise _problem(
            filename, "quota_class", f"unknown class {doc.quota_class!r}; known: {known}"
        )
    limits = dict(quota_class.limits.as_dict())
    for dim, value in doc.quota.items():
        if dim not in DIMENSIONS:
            raise _problem(filename, f"quota.{dim}", f"unknown dimension; use {DIMENSIONS}")
        cap = limits.get(dim)
        if value < 0 or (cap is not None and value > cap):
            raise _problem(
                filename, f"quota.{dim}", f"{value} must be between 0 and the class limit {cap}"
            )
        limits[dim] = value
    clean = {d: v for d, v in limits.items() if v is not None}
    template = Template(
        name=name,
        description=doc.description,
        default_ttl_hours=default_ttl,
        max_ttl_hours=max_ttl,
        quota_class=doc.quota_class,
        limits=clean,
        soft_threshold=quota_class.limits.soft_threshold,
        servers=doc.servers,
        networks=doc.networks,
    )
    cap = clean.get("instances")
    if cap is not None and template.server_count > cap:
        raise _problem(
            filename, "servers", f"{template.server_count} servers exceed the quota of {cap}"
        )
    return template


def load_templates(
    classes: Mapping[str, QuotaClass], directory: Path = TEMPLATE_DIR
) -> dict[str, Template]:
    """Every ``*.yaml`` template in ``directory``, by name (the file's stem)."""
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        out[path.stem] = parse_template(path.read_text(), path.name, path.stem, classes)
    return out


def get_template(templates: Mapping[str, Template], name: str) -> Template:
    """The template ``name``, or NotFound listing the known ones."""
    if name not in templates:
        raise NotFound("lab_template", name)
    return templates[name]
