"""Pure hierarchical quota engine for the organisation tree (root -> ministry -> agency -> project).

* ``quotas.vector``: the quota dimensions and ``Usage``, an immutable amount per dimension.
* ``quotas.engine``: ``Limits`` per node and ``check``, which lists every exhausted dimension
  at every level of a request's path; ``over_limit``, ``over_soft_threshold``, ``headroom``,
  and ``charge``/``release`` (the pure model of what the store does to usage).
* ``quotas.policy``: quota classes and assignments in YAML files (``quotas/policies/``),
  validated with file/line/field errors, and ``plan``, the diff an apply would make.

This package does no I/O besides reading policy files, and imports nothing else of govcloud;
the store enforces the same rules atomically, and the API turns violations into
``quota.exceeded`` errors.
"""

from quotas.engine import (
    DEFAULT_SOFT_THRESHOLD,
    CheckResult,
    Limits,
    OverLimit,
    SoftWarning,
    Violation,
    charge,
    check,
    headroom,
    over_limit,
    over_soft_threshold,
    release,
)
from quotas.policy import (
    POLICY_DIR,
    Assignment,
    Change,
    PolicyError,
    PolicyFile,
    Problem,
    QuotaClass,
    apply_changes,
    desired_limits,
    load_classes,
    load_policy,
    parse_policy,
    plan,
)
from quotas.vector import DIMENSIONS, MAX_AMOUNT, UNITS, Usage

__all__ = [
    "DEFAULT_SOFT_THRESHOLD",
    "DIMENSIONS",
    "MAX_AMOUNT",
    "POLICY_DIR",
    "UNITS",
    "Assignment",
    "Change",
    "CheckResult",
    "Limits",
    "OverLimit",
    "PolicyError",
    "PolicyFile",
    "Problem",
    "QuotaClass",
    "SoftWarning",
    "Usage",
    "Violation",
    "apply_changes",
    "charge",
    "check",
    "desired_limits",
    "headroom",
    "load_classes",
    "load_policy",
    "over_limit",
    "over_soft_threshold",
    "parse_policy",
    "plan",
    "release",
]
