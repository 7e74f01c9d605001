"""Quota policy files: the shipped classes load, bad files give file + line + field errors,
assignments resolve against classes, and ``plan`` is an idempotent diff."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotas import (
    DIMENSIONS,
    POLICY_DIR,
    Change,
    Limits,
    PolicyError,
    Usage,
    apply_changes,
    desired_limits,
    load_classes,
    load_policy,
    parse_policy,
    plan,
)


def parse(text: str) -> object:
    return parse_policy(textwrap.dedent(text), "p.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse(text)
    return [str(p) for p in caught.value.problems]


# --- shipped classes ------------------------------------------------------------------------


def test_shipped_classes_load_with_plausible_limits() -> None:
    classes = load_classes()
    assert set(classes) == {"ministry-standard", "agency-small", "openlab-trial"}
    ministry = classes["ministry-standard"].limits
    assert ministry.get("vcpus") == 512
    assert ministry.get("ram_mib") == 2 * 1024 * 1024
    assert ministry.get("disk_gib") == 50 * 1024
    assert ministry.get("instances") == 500
    trial = classes["openlab-trial"].limits
    assert (trial.get("instances"), trial.get("vcpus"), trial.get("trial_envs")) == (33, 132, 1)
    small = classes["agency-small"].limits
    for dim in DIMENSIONS:  # an agency-small fits inside a ministry-standard
        assert (small.get(dim) or 0) <= (ministry.get(dim) or 0)
    for name, cls in classes.items():
        assert Path(cls.file) == POLICY_DIR / f"{name}.yaml"


# --- errors with file, line and field -------------------------------------------------------


def test_unknown_dimension_names_file_line_field_and_known_dimensions() -> None:
    assert errors(
        """\
        classes:
          ministry-standard:
            limits:
              vcpu: 512
        """
    ) == [
        "p.yaml:4: field 'classes.ministry-standard.limits.vcpu': unknown dimension 'vcpu'"
        " (known: instances, vcpus, ram_mib, disk_gib, trial_envs)"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-3", "must be a non-negative integer, got -3"),
        ("1.5", "must be a non-negative integer, got 1.5"),
        ("true", "must be a non-negative integer, got True"),
        ("2TiB", "must be a non-negative integer, got '2TiB'"),
        ("[1, 2]", "must be a non-negative integer, got a list"),
        ("10000000000000000", "must be at most 1000000000000000, got 10000000000000000"),
    ],
)
def test_bad_amounts(value: str, message: str) -> None:
    text = f"assignments:\n  - org: motc\n    limits:\n      disk_gib: 1\n      vcpus: {value}\n"
    assert errors(text) == [f"p.yaml:5: field 'assignments[0].limits.vcpus': {message}"]


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    problems = errors(
        """\
        classes:
          agency-small:
            limits: {vcpus: 64}
            soft_threshold: 1.2
            descripton: typo
          Bad_Name:
            limits: {}
        assignments:
          - org: motc
          - org: MOTC
            class: agency-small
          - org: moe
            class: agency-small
          - org: moe
            limits: {vcpus: 1}
        extra: 1
        """
    )
    assert problems == [
        "p.yaml:4: field 'classes.agency-small.soft_threshold': must be a number in (0, 1],"
        " got 1.2",
        "p.yaml:5: field 'classes.agency-small.descripton': unknown field"
        " (allowed: description, limits, soft_threshold)",
        "p.yaml:6: field 'classes.Bad_Name': class names are lower-case letters, digits and '-'",
        "p.yaml:9: field 'assignments[0]': needs 'class', 'limits' or both",
        "p.yaml:10: field 'assignments[1].org': 'MOTC' is not an organisation code"
        " (lower-case letters, digits, '-')",
        "p.yaml:14: field 'assignments[3].org': 'moe' is assigned twice (first on line 12)",
        "p.yaml:16: field 'extra': unknown field (allowed: description, classes, assignments)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1: empty policy file; expected 'classes' or 'assignments'"),
        ("- 1\n", "p.yaml:1: must be a mapping, got a list"),
        ("description: x\n", "p.yaml:1: expected 'classes' or 'assignments'"),
        ("classes:\n  x:\n    soft_threshold: 0.5\n", "p.yaml:3: field 'classes.x': missing"),
        ("assignments:\n  org: motc\n", "p.yaml:2: field 'assignments': must be a list"),
        ("assignments:\n  - class: a\n", "p.yaml:2: field 'assignments[0]': missing 'org'"),
        ("classes: {a: {limits: {vcpus: 1}}\n", "p.yaml:2: invalid YAML"),
        ("classes:\n  a: {limits: 5}\n", "p.yaml:2: field 'classes.a.limits': must be a mapping"),
    ],
)
def test_malformed_files(text: str, expected: str) -> None:
    [problem] = errors(text)
    assert problem.startswith(expected)


def test_duplicate_key_points_at_both_lines() -> None:
    [problem] = errors("classes:\n  a: {limits: {}}\n  a: {limits: {}}\n")
    assert problem == "p.yaml:3: field 'classes.a': duplicate key (first given on line 2)"


def test_unsafe_tags_are_refused_not_executed() -> None:
    [problem] = errors("classes:\n  a:\n    limits: {vcpus: !!python/name:os.system x}\n")
    assert problem.startswith("p.yaml:3: field 'classes.a.limits.vcpus': must be a non-negative")


def test_load_policy_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "motc.yaml"
    path.write_text("assignments:\n  - {org: motc, class: ministry-standard, limits: {vcpus: x}}\n")
    with pytest.raises(PolicyError, match=rf"^{path}:2: field 'assignments\[0\]\.limits\.vcpus'"):
        load_policy(path)


def test_duplicate_class_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("classes:\n  same: {limits: {vcpus: 1}}\n")
    (tmp_path / "b.yaml").write_text("# comment\nclasses:\n  same: {limits: {vcpus: 2}}\n")
    with pytest.raises(PolicyError) as caught:
        load_classes(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/b.yaml:3: field 'classes.same': class defined twice"
        f" (first at {tmp_path}/a.yaml:2)"
    )


# --- resolving assignments ------------------------------------------------------------------

ASSIGNMENTS = """\
assignments:
  - org: motc
    class: ministry-standard
  - org: motc-thb
    limits: {vcpus: 128}
  - org: moe
    class: ministry-standard
    limits: {vcpus: 1024, trial_envs: null}
    soft_threshold: 0.9
  - org: lab-food
    class: openlab-trial
"""


def test_assignments_resolve_classes_and_overrides() -> None:
    desired = desired_limits(parse_policy(ASSIGNMENTS, "a.yaml"), load_classes())
    assert list(desired) == ["motc", "motc-thb", "moe", "lab-food"]
    assert desired["motc"] == load_classes()["ministry-standard"].limits
    assert desired["motc-thb"] == Limits.of(vcpus=128)
    moe = desired["moe"]
    assert (moe.get("vcpus"), moe.get("ram_mib"), moe.get("trial_envs")) == (1024, 2097152, None)
    assert moe.soft_threshold == 0.9
    assert desired["lab-food"].soft_threshold == 0.75


def test_unknown_class_and_unknown_org_are_located() -> None:
    policy = parse_policy(ASSIGNMENTS.replace("openlab-trial", "openlab-trail"), "a.yaml")
    with pytest.raises(PolicyError) as caught:
        desired_limits(policy, load_classes(), known_orgs={"motc", "moe", "lab-food"})
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:4: field 'assignments[1].org': unknown organisation 'motc-thb'",
        "a.yaml:10: field 'assignments[3].class': unknown class 'openlab-trail'"
        " (known: agency-small, ministry-standard, openlab-trial)",
    ]


def test_a_file_may_define_and_use_its_own_class() -> None:
    text = "classes:\n  tiny: {limits: {instances: 1}}\nassignments:\n  - {org: p1, class: tiny}\n"
    assert desired_limits(parse_policy(text)) == {"p1": Limits.of(instances=1)}


# --- plan -----------------------------------------------------------------------------------


def test_plan_shows_the_diff_and_flags_limits_below_usage() -> None:
    current = {"motc": Limits.of(vcpus=1024, ram_mib=4096), "moe": Limits.of(vcpus=10)}
    desired = {"motc": Limits.of(vcpus=512, disk_gib=100, soft_threshold=0.9)}
    changes = plan(current, desired, usage={"motc": Usage.of(vcpus=600)})
    assert [c.describe() for c in changes] == [
        "motc: vcpus 1024 -> 512 (below current usage 600: blocks new usage)",
        "motc: ram_mib 4096 -> unlimited",
        "motc: disk_gib unlimited -> 100",
        "motc: soft_threshold 0.8 -> 0.9",
    ]
    assert [c.below_usage for c in changes] == [True, False, False, False]
    applied = apply_changes(current, changes)
    assert applied["moe"] == current["moe"]  # organisations not in the file are untouched
    assert plan(applied, desired) == []


def test_plan_of_new_org_with_no_limits_is_empty() -> None:
    assert plan({}, {"p1": Limits()}) == []
    assert plan({}, {"p1": Limits.of(vcpus=0)}) == [Change("p1", "vcpus", None, 0, None)]


limits_strategy = st.builds(
    lambda caps, t: Limits(caps, soft_threshold=t),
    st.dictionaries(st.sampled_from(DIMENSIONS), st.none() | st.integers(0, 10**6)),
    st.sampled_from([0.5, 0.8, 0.9, 1.0]),
)
orgs = st.sampled_from(["gov", "motc", "moe", "motc-thb", "p1"])
limit_maps = st.dictionaries(orgs, limits_strategy)


@given(current=limit_maps, desired=limit_maps)
def test_plan_is_idempotent(current: dict[str, Limits], desired: dict[str, Limits]) -> None:
    changes = plan(current, desired)
    applied = apply_changes(current, changes)
    for org, limits in desired.items():
        assert applied.get(org, Limits()) == limits  # absent means unlimited
    for org in set(current) - set(desired):
        assert applied[org] == current[org]
    assert plan(applied, desired) == []
    assert apply_changes(applied, plan(applied, desired)) == applied
    assert len({(c.org, c.field) for c in changes}) == len(changes)
