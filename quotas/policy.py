"""Quota policy files: quota classes and assignments in YAML, and the diff that applies them.

This module owns the policy file format, its validation and ``plan``. A file holds
``classes`` (named limit sets, e.g. ``ministry-standard``) and/or ``assignments`` of
limits to organisations::

    classes:
      ministry-standard:
        description: Standard allowance of a ministry
        limits: {instances: 500, vcpus: 512, ram_mib: 2097152, disk_gib: 51200}
        soft_threshold: 0.8
    assignments:
      - {org: motc, class: ministry-standard}
      - {org: motc-thb, limits: {vcpus: 128}}            # limits alone
      - {org: moe, class: ministry-standard, limits: {vcpus: 1024, disk_gib: null}}

An assignment is declarative for its organisation: the resulting limits are the class's,
with ``limits`` laid over them (``null`` = unlimited), and any dimension left out is
unlimited. Organisations not named in the file are untouched. The YAML is parsed into
nodes (``yaml.compose``) so every error names file, line and field; all problems of a
file are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode

from quotas.engine import DEFAULT_SOFT_THRESHOLD, Limits, threshold_problem
from quotas.vector import DIMENSIONS, Usage, amount_problem, dimension_problem

#: The policy files shipped with govcloud (quota classes).
POLICY_DIR = Path(__file__).parent / "policies"

_CLASS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ORG_CODE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # same rule as controlplane's ``Code``
_TOP_KEYS = ("description", "classes", "assignments")
_CLASS_KEYS = ("description", "limits", "soft_threshold")
_ASSIGNMENT_KEYS = ("org", "class", "limits", "soft_threshold")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, located by file, line (1-based) and field."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        field = f" field '{self.field}':" if self.field else ""
        return f"{self.file}:{self.line}:{field} {self.message}"


class PolicyError(ValueError):
    """A policy file is invalid; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line)))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class QuotaClass:
    """A named set of limits, defined at ``file:line``."""

    name: str
    limits: Limits
    description: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Assignment:
    """Limits for one organisation: a class and/or overrides, written at ``file:line``."""

    org: str
    class_name: str | None
    overrides: tuple[tuple[str, int | None], ...]
    soft_threshold: float | None
    file: str
    line: int
    index: int


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A parsed, validated policy file (class references not yet resolved)."""

    file: str
    classes: tuple[QuotaClass, ...]
    assignments: tuple[Assignment, ...]


class _Parser:
    """Walks a composed YAML tree, collecting problems instead of stopping at the first."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()

    def problem(self, node: Node, field: str, message: str) -> None:
        self.problems.append(Problem(self.file, node.start_mark.line + 1, field, message))

    def value(self, node: Node) -> object:
        """The Python value of a scalar node; other nodes become a ``_Shape`` for messages."""
        if isinstance(node, MappingNode):
            return _Shape("a mapping")
        if isinstance(node, SequenceNode):
            return _Shape("a list")
        try:
            return self._constructor.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            return _Shape(f"an unsupported value ({exc.problem})")

    def mapping(
        self, node: Node, field: str, allowed: Collection[str] | None
    ) -> dict[str, tuple[Node, Node]] | None:
        """``{key: (key_node, value_node)}``; unknown and duplicate keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(node, field, f"must be a mapping, got {self.value(node)!r}")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            sub = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str):
                self.problem(key_node, field, f"keys must be strings, got {key!r}")
            elif key in out:
                line = out[key][0].start_mark.line + 1
                self.problem(key_node, sub, f"duplicate key (first given on line {line})")
            elif allowed is not None and key not in allowed:
                self.problem(key_node, sub, f"unknown field (allowed: {', '.join(allowed)})")
            else:
                out[key] = (key_node, value_node)
        return out

    def text(self, node: Node, field: str) -> str | None:
        value = self.value(node)
        if not isinstance(value, str):
            self.problem(node, field, f"must be a string, got {value!r}")
            return None
        return value

    def threshold(self, node: Node, field: str) -> float | None:
        value = self.value(node)
        problem = threshold_problem(value)
        if problem:
            self.problem(node, field, problem)
            return None
        assert isinstance(value, int | float)
        return float(value)

    def limits(self, node: Node, field: str) -> dict[str, int | None]:
        """Dimension -> amount or None (unlimited); bad entries are problems and skipped."""
        entries = self.mapping(node, field, None) or {}
        out: dict[str, int | None] = {}
        for dim, (key_node, value_node) in entries.items():
            sub = f"{field}.{dim}"
            bad_dim = dimension_problem(dim)
            if bad_dim:
                self.problem(key_node, sub, bad_dim)
                continue
            value = self.value(value_node)
            if value is None:
                out[dim] = None
                continue
            bad_amount = amount_problem(value)
            if bad_amount:
                self.problem(value_node, sub, bad_amount)
                continue
            assert isinstance(value, int)
            out[dim] = value
        return out

    def quota_class(self, name: str, key_node: Node, node: Node) -> QuotaClass | None:
        field = f"classes.{name}"
        before = len(self.problems)
        if not _CLASS_NAME.match(name):
            self.problem(key_node, field, "class names are lower-case letters, digits and '-'")
        keys = self.mapping(node, field, _CLASS_KEYS)
        if keys is None:
            return None
        if "limits" not in keys:
            self.problem(node, field, "missing 'limits'")
        values = self.limits(keys["limits"][1], f"{field}.limits") if "limits" in keys else {}
        threshold = DEFAULT_SOFT_THRESHOLD
        if "soft_threshold" in keys:
            threshold = self.threshold(keys["soft_threshold"][1], f"{field}.soft_threshold") or 1.0
        description = ""
        if "description" in keys:
            description = self.text(keys["description"][1], f"{field}.description") or ""
        if len(self.problems) > before:
            return None
        line = key_node.start_mark.line + 1
        return QuotaClass(
            name, Limits(values, soft_threshold=threshold), description, self.file, line
        )

    def assignment(self, index: int, node: Node) -> Assignment | None:
        field = f"assignments[{index}]"
        before = len(self.problems)
        keys = self.mapping(node, field, _ASSIGNMENT_KEYS)
        if keys is None:
            return None
        org = None
        if "org" not in keys:
            self.problem(node, field, "missing 'org'")
        else:
            org = self.text(keys["org"][1], f"{field}.org")
            if org is not None and not _ORG_CODE.match(org):
                self.problem(
                    keys["org"][1],
                    f"{field}.org",
                    f"{org!r} is not an organisation code (lower-case letters, digits, '-')",
                )
        if "class" not in keys and "limits" not in keys:
            self.problem(node, field, "needs 'class', 'limits' or both")
        class_name = self.text(keys["class"][1], f"{field}.class") if "class" in keys else None
        overrides = self.limits(keys["limits"][1], f"{field}.limits") if "limits" in keys else {}
        threshold = None
        if "soft_threshold" in keys:
            threshold = self.threshold(keys["soft_threshold"][1], f"{field}.soft_threshold")
        if len(self.problems) > before or org is None:
            return None
        line = node.start_mark.line + 1
        return Assignment(
            org, class_name, tuple(overrides.items()), threshold, self.file, line, index
        )

    def policy(self, root: Node | None) -> PolicyFile:
        if root is None:
            self.problems.append(
                Problem(self.file, 1, "", "empty policy file; expected 'classes' or 'assignments'")
            )
            return PolicyFile(self.file, (), ())
        top = self.mapping(root, "", _TOP_KEYS) or {}
        if top.keys().isdisjoint({"classes", "assignments"}) and not self.problems:
            self.problem(root, "", "expected 'classes' or 'assignments'")
        if "description" in top:
            self.text(top["description"][1], "description")
        classes: list[QuotaClass] = []
        if "classes" in top:
            for name, (key_node, node) in (
                self.mapping(top["classes"][1], "classes", None) or {}
            ).items():
                cls = self.quota_class(name, key_node, node)
                if cls is not None:
                    classes.append(cls)
        assignments: list[Assignment] = []
        if "assignments" in top:
            seq = top["assignments"][1]
            if not isinstance(seq, SequenceNode):
                self.problem(seq, "assignments", f"must be a list, got {self.value(seq)!r}")
            else:
                first_line: dict[str, int] = {}
                for index, node in enumerate(seq.value):
                    item = self.assignment(index, node)
                    if item is None:
                        continue
                    if item.org in first_line:
                        first = first_line[item.org]
                        self.problem(
                            node,
                            f"assignments[{index}].org",
                            f"{item.org!r} is assigned twice (first on line {first})",
                        )
                        continue
                    first_line[item.org] = item.line
                    assignments.append(item)
        return PolicyFile(self.file, tuple(classes), tuple(assignments))


class _Shape:
    """Stands for a value that is not a plain scalar in messages: ``got a mapping``."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


def parse_policy(text: str, file: str = "<string>") -> PolicyFile:
    """Parse and validate policy ``text``; raise ``PolicyError`` listing every problem."""
    parser = _Parser(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError([Problem(file, line, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(file, 1, "", f"invalid YAML: {exc}")]) from exc
    policy = parser.policy(root)
    if parser.problems:
        raise PolicyError(parser.problems)
    return policy


def load_policy(path: str | Path) -> PolicyFile:
    """Read and parse one policy file; errors name the path as given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([Problem(str(path), 1, "", f"not UTF-8 text: {exc.reason}")]) from exc
    return parse_policy(text, str(path))


def load_classes(directory: str | Path = POLICY_DIR) -> dict[str, QuotaClass]:
    """Every class defined in ``directory/*.yaml`` (sorted by file name); names must be unique."""
    classes: dict[str, QuotaClass] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        for cls in policy.classes:
            if cls.name in classes:
                first = classes[cls.name]
                problems.append(
                    Problem(
                        cls.file,
                        cls.line,
                        f"classes.{cls.name}",
                        f"class defined twice (first at {first.file}:{first.line})",
                    )
                )
            else:
                classes[cls.name] = cls
    if problems:
        raise PolicyError(problems)
    return classes


def desired_limits(
    policy: PolicyFile,
    library: Mapping[str, QuotaClass] | None = None,
    known_orgs: Collection[str] | None = None,
) -> dict[str, Limits]:
    """Resolve ``policy``'s assignments into limits per organisation, in file order.

    Classes are looked up in the file itself first, then in ``library``. With
    ``known_orgs``, an assignment to an organisation not in it is a problem.
    """
    own = {cls.name: cls for cls in policy.classes}
    problems: list[Problem] = []
    out: dict[str, Limits] = {}
    for item in policy.assignments:
        field = f"assignments[{item.index}]"
        if known_orgs is not None and item.org not in known_orgs:
            problems.append(
                Problem(item.file, item.line, f"{field}.org", f"unknown organisation {item.org!r}")
            )
        base = Limits()
        if item.class_name is not None:
            cls = own.get(item.class_name) or (library or {}).get(item.class_name)
            if cls is None:
                known = sorted({*own, *(library or {})})
                problems.append(
                    Problem(
                        item.file,
                        item.line,
                        f"{field}.class",
                        f"unknown class {item.class_name!r} (known: {', '.join(known) or 'none'})",
                    )
                )
                continue
            base = cls.limits
        out[item.org] = base.merged(dict(item.overrides), item.soft_threshold)
    if problems:
        raise PolicyError(problems)
    return out


def _show(value: int | float | None) -> str:
    if value is None:
        return "unlimited"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Change:
    """One field of one organisation's limits that ``apply`` would change.

    ``field`` is a dimension (values: cap or ``None`` = unlimited) or ``soft_threshold``.
    ``used`` is the organisation's current usage of the dimension, when known.
    """

    org: str
    field: str
    old: int | float | None
    new: int | float | None
    used: int | None = None

    @property
    def below_usage(self) -> bool:
        """True when the new limit is below current usage: allowed, but blocks new usage."""
        return (
            self.field in DIMENSIONS
            and self.used is not None
            and self.new is not None
            and self.used > self.new
        )

    def describe(self) -> str:
        """E.g. ``motc: vcpus unlimited -> 512`` (+ a warning when below usage)."""

        text = f"{self.org}: {self.field} {_show(self.old)} -> {_show(self.new)}"
        if self.below_usage:
            text += f" (below current usage {self.used}: blocks new usage)"
        return text


def plan(
    current: Mapping[str, Limits],
    desired: Mapping[str, Limits],
    usage: Mapping[str, Usage] | None = None,
) -> list[Change]:
    """The changes that turn ``current`` into ``desired`` for the organisations it names.

    Empty when already applied. An organisation missing from ``current`` counts as
    unlimited with the default soft threshold. Order: ``desired``'s, then dimensions in
    display order, then ``soft_threshold``.
    """
    changes: list[Change] = []
    for org, new in desired.items():
        old = current.get(org, Limits())
        used = usage.get(org, Usage()) if usage is not None else None
        for dim in DIMENSIONS:
            if old.get(dim) != new.get(dim):
                held = used[dim] if used is not None else None
                changes.append(Change(org, dim, old.get(dim), new.get(dim), held))
        if old.soft_threshold != new.soft_threshold:
            changes.append(Change(org, "soft_threshold", old.soft_threshold, new.soft_threshold))
    return changes


def apply_changes(current: Mapping[str, Limits], changes: Iterable[Change]) -> dict[str, Limits]:
    """A new limits map with ``changes`` applied (the pure model of what the store does)."""
    out = dict(current)
    for change in changes:
        old = out.get(change.org, Limits())
        if change.field == "soft_threshold":
            assert change.new is not None
            out[change.org] = old.merged({}, float(change.new))
        else:
            new = change.new
            assert new is None or isinstance(new, int)
            out[change.org] = old.merged({change.field: new})
    return out
