"""Domain rules: the instance state machine, action guards, name validation, resources and
authorisation. Pure functions, no I/O."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from controlplane.domain.auth import (
    Principal,
    Role,
    can_see,
    require_agent_for,
    require_infra_reader,
    require_mutate,
    require_platform_admin,
    require_user_admin,
)
from controlplane.domain.errors import Forbidden, InvalidState, NotFound
from controlplane.domain.flavor import Flavor
from controlplane.domain.host import AllocationRatios, usable
from controlplane.domain.image import Image, ImageFormat
from controlplane.domain.instance import (
    ACTION_ALLOWED,
    CLAIMING,
    TRANSITIONS,
    InstanceState,
    action_outcome,
    can_transition,
    check_action,
)
from controlplane.domain.names import Code, LocalPath, Name, Text, Trait
from controlplane.domain.org import can_see_org, within
from controlplane.domain.resources import Resources

S = InstanceState

# -- the instance state machine ---------------------------------------------------------


def _reachable(start: InstanceState) -> set[InstanceState]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_has_a_transition_entry() -> None:
    assert set(TRANSITIONS) == set(InstanceState)


def test_deleted_is_terminal_and_reachable_from_everywhere() -> None:
    assert TRANSITIONS[S.DELETED] == frozenset()
    for state in InstanceState:
        assert S.DELETED in _reachable(state), state


def test_deleted_only_through_deleting_once_placed() -> None:
    # Once an instance holds a host claim it must go through DELETING (the agent removes
    # the domain and the claim is released); only a PENDING one may vanish directly.
    direct = {s for s in InstanceState if S.DELETED in TRANSITIONS[s]}
    assert direct == {S.PENDING, S.DELETING}


def test_deleting_cannot_come_back() -> None:
    assert _reachable(S.DELETING) == {S.DELETING, S.DELETED}


def test_nothing_returns_to_pending_or_scheduled_except_an_evacuated_instance() -> None:
    for state, targets in TRANSITIONS.items():
        if state is not S.UNKNOWN:  # its host is DOWN: evacuation re-queues it
            assert S.PENDING not in targets, state
        if state is not S.PENDING:
            assert S.SCHEDULED not in targets, state


@pytest.mark.parametrize("state", list(InstanceState))
def test_staying_put_is_always_allowed(state: InstanceState) -> None:
    assert can_transition(state, state)


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (S.PENDING, S.SCHEDULED, True),
        (S.PENDING, S.RUNNING, False),
        (S.SCHEDULED, S.RUNNING, True),
        (S.RUNNING, S.STOPPED, True),
        (S.STOPPED, S.RUNNING, True),
        (S.RUNNING, S.BUILDING, False),
        (S.ERROR, S.RUNNING, True),
        (S.DELETING, S.RUNNING, False),
        (S.DELETED, S.RUNNING, False),
        (S.RUNNING, S.DELETED, False),
    ],
)
def test_can_transition(current: InstanceState, new: InstanceState, allowed: bool) -> None:
    assert can_transition(current, new) is allowed


def test_claiming_states_are_exactly_the_placed_live_ones() -> None:
    assert set(InstanceState) - CLAIMING == {S.PENDING, S.DELETED}


@pytest.mark.parametrize("action", sorted(ACTION_ALLOWED))
@pytest.mark.parametrize("state", list(InstanceState))
def test_check_action_matches_the_table(action: str, state: InstanceState) -> None:
    if state in ACTION_ALLOWED[action]:
        check_action(action, state, "i-1")
        return
    with pytest.raises(InvalidState) as caught:
        check_action(action, state, "i-1")
    err = caught.value
    assert err.code == "instance.invalid_state"
    assert err.details["state"] == state.value
    assert err.details["allowed"] == sorted(s.value for s in ACTION_ALLOWED[action])
    assert f"cannot {action} instance i-1 in state {state.value}" in err.message


def test_action_guards_by_hand() -> None:
    assert ACTION_ALLOWED["start"] == {S.STOPPED}
    assert ACTION_ALLOWED["reboot"] == {S.RUNNING}
    assert S.DELETING not in ACTION_ALLOWED["delete"]
    assert S.DELETED not in ACTION_ALLOWED["delete"]
    assert S.STOPPED not in ACTION_ALLOWED["stop"]


@pytest.mark.parametrize(
    ("action", "state", "applied", "target", "expected"),
    [
        ("create", S.SCHEDULED, 0, 0, None),
        ("create", S.RUNNING, 0, 0, "success"),
        ("create", S.STOPPED, 0, 0, "success"),
        ("create", S.ERROR, 0, 0, "error"),
        ("stop", S.RUNNING, 0, 0, None),
        ("stop", S.STOPPED, 0, 0, "success"),
        ("start", S.RUNNING, 0, 0, "success"),
        ("reboot", S.RUNNING, 1, 2, None),
        ("reboot", S.RUNNING, 2, 2, "success"),
        ("reboot", S.RUNNING, 3, 2, "success"),
        ("delete", S.DELETING, 0, 0, None),
        ("delete", S.DELETED, 0, 0, "success"),
        ("delete", S.ERROR, 0, 0, "error"),
        ("unknown", S.RUNNING, 0, 0, None),
    ],
)
def test_action_outcome(
    action: str, state: InstanceState, applied: int, target: int, expected: str | None
) -> None:
    assert action_outcome(action, state, applied, target) == expected


# -- names -------------------------------------------------------------------------------

NAME = TypeAdapter(Name)
CODE = TypeAdapter(Code)
TEXT = TypeAdapter(Text)
PATH = TypeAdapter(LocalPath)
TRAIT = TypeAdapter(Trait)

#: Characters that mean something to XML, shells, SQL or paths.
METACHARACTERS = [
    "<",
    ">",
    "&",
    ";",
    "$(",
    "`",
    "'",
    '"',
    "|",
    "\\",
    " ",
    "\n",
    "\x00",
    "*",
    "?",
    "{",
    "}",
    "/",
    ":",
    "%",
]


@pytest.mark.parametrize("good", ["web-01", "m1.small", "A", "x" * 63, "9lives", "a_b.c-d"])
def test_name_accepts(good: str) -> None:
    assert NAME.validate_python(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 64, "-lead", ".hidden", "_x", "wéb", "web 01", "..", "a/b"],
)
def test_name_refuses(bad: str) -> None:
    with pytest.raises(ValidationError):
        NAME.validate_python(bad)


@pytest.mark.parametrize(
    ("kind", "meta"),
    [
        (kind, meta)
        for kind in ("name", "code", "path", "trait")
        for meta in METACHARACTERS
        if not (kind == "path" and meta == "/")  # the path separator
    ],
)
def test_metacharacters_are_refused_everywhere(kind: str, meta: str) -> None:
    adapter = {"name": NAME, "code": CODE, "path": PATH, "trait": TRAIT}[kind]
    candidate = f"/x{meta}y" if kind == "path" else f"x{meta}y"
    with pytest.raises(ValidationError):
        adapter.validate_python(candidate)


@given(st.text(max_size=80))
def test_a_valid_name_never_carries_markup_or_shell_syntax(value: str) -> None:
    try:
        NAME.validate_python(value)
    except ValidationError:
        return
    assert 1 <= len(value) <= 63
    assert not set(value) & set("<>&;$`'\"|\\ \t\n\x00*?{}()/%:")


@pytest.mark.parametrize("good", ["moi", "tpe-1", "a", "a" + "b" * 31])
def test_code_accepts(good: str) -> None:
    assert CODE.validate_python(good) == good


@pytest.mark.parametrize("bad", ["", "MOI", "1moi", "a" * 33, "mo_i", "mo.i", "-x"])
def test_code_refuses(bad: str) -> None:
    with pytest.raises(ValidationError):
        CODE.validate_python(bad)


def test_text_allows_people_text_but_not_control_characters() -> None:
    assert TEXT.validate_python("Ministry of the Interior <MOI> & co; 內政部") is not None
    for bad in ("line\nbreak", "nul\x00", "bell\x07", "del\x7f", "x" * 201):
        with pytest.raises(ValidationError):
            TEXT.validate_python(bad)


@pytest.mark.parametrize(
    "bad",
    ["relative/path", "/a/../etc/passwd", "/..", "/a b", "/a;rm", "/x$(id)", "/" + "a" * 1024],
)
def test_local_path_refuses(bad: str) -> None:
    with pytest.raises(ValidationError):
        PATH.validate_python(bad)


def test_local_path_accepts_dotted_file_names() -> None:
    assert PATH.validate_python("/var/lib/govcloud/cirros-0.6.2.qcow2")
    assert PATH.validate_python("/boot/..hidden")  # '..' only refused as a whole segment


def test_flavor_limits() -> None:
    Flavor(name="m1.small", vcpus=1, ram_mib=64, disk_gib=0)
    for bad in ({"vcpus": 0}, {"vcpus": 257}, {"ram_mib": 63}, {"disk_gib": -1}):
        fields: dict[str, Any] = {"name": "f", "vcpus": 1, "ram_mib": 512, "disk_gib": 1} | bad
        with pytest.raises(ValidationError):
            Flavor(**fields)


def test_kernel_images_need_a_kernel() -> None:
    with pytest.raises(ValidationError, match="kernel_path"):
        Image(name="tiny", format=ImageFormat.KERNEL)
    assert Image(name="tiny", format=ImageFormat.KERNEL, kernel_path="/boot/vmlinuz")


# -- resources and host capacity ----------------------------------------------------------

small = st.integers(min_value=0, max_value=10_000)
resources = st.builds(Resources, vcpus=small, ram_mib=small, disk_gib=small)


@given(resources, resources)
def test_subtraction_clamps_at_zero(a: Resources, b: Resources) -> None:
    diff = a - b
    for dim in ("vcpus", "ram_mib", "disk_gib"):
        assert getattr(diff, dim) == max(0, getattr(a, dim) - getattr(b, dim))


@given(resources, resources)
def test_short_of_names_exactly_the_dimensions_that_do_not_fit(
    demand: Resources, free: Resources
) -> None:
    short = demand.short_of(free)
    for dim in ("vcpus", "ram_mib", "disk_gib"):
        assert (dim in short) == (getattr(demand, dim) > getattr(free, dim))
    assert (short == []) == ((free - demand) + demand == free)


def test_describe() -> None:
    assert Resources(vcpus=4, ram_mib=8192, disk_gib=40).describe() == (
        "4 vCPU, 8192 MiB RAM, 40 GiB disk"
    )


def test_usable_applies_reservation_then_ratio_and_floors() -> None:
    got = usable(
        Resources(vcpus=8, ram_mib=16384, disk_gib=101),
        Resources(vcpus=1, ram_mib=512, disk_gib=0),
        AllocationRatios(cpu=4.0, ram=1.5, disk=0.5),
    )
    assert got == Resources(vcpus=28, ram_mib=23808, disk_gib=50)


def test_usable_never_negative_when_reservation_exceeds_capacity() -> None:
    got = usable(Resources(vcpus=2), Resources(vcpus=4, ram_mib=512), AllocationRatios())
    assert got == Resources()


# -- organisations and authorisation -----------------------------------------------------


def test_within_is_by_path_segment_not_string_prefix() -> None:
    assert within("gov/moi", "gov/moi")
    assert within("gov/moi/nfa", "gov/moi")
    assert not within("gov/moi2", "gov/moi")
    assert not within("gov/moi", "gov/moi/nfa")
    assert within("gov/motc", "gov")


def test_can_see_org_includes_ancestors_but_not_siblings() -> None:
    assert can_see_org("gov", "gov/moi/nfa")
    assert can_see_org("gov/moi", "gov/moi/nfa")
    assert can_see_org("gov/moi/nfa/disaster", "gov/moi/nfa")
    assert not can_see_org("gov/motc", "gov/moi")
    assert not can_see_org("gov/moi/npa", "gov/moi/nfa")


def who(role: Role, path: str = "gov/moi", host_id: str | None = None) -> Principal:
    return Principal(name=f"{role.value}-user", role=role, org_path=path, host_id=host_id)


PLATFORM = who(Role.PLATFORM_ADMIN, "gov")
MOI_ADMIN = who(Role.MINISTRY_ADMIN)
MOI_MEMBER = who(Role.MEMBER, "gov/moi/nfa")
ROOT_AUDITOR = who(Role.AUDITOR, "gov")
MOI_AUDITOR = who(Role.AUDITOR)
AGENT = who(Role.AGENT, "gov", host_id="h-1")


def test_can_see() -> None:
    assert can_see(MOI_ADMIN, "gov/moi/nfa/disaster")
    assert not can_see(MOI_ADMIN, "gov/motc/thb/traffic")
    assert can_see(PLATFORM, "gov/motc/thb/traffic")
    assert not can_see(AGENT, "gov/moi"), "agents see nothing through user routes"


@pytest.mark.parametrize(
    ("principal", "path", "allowed"),
    [
        (PLATFORM, "gov/motc/thb/traffic", True),
        (MOI_ADMIN, "gov/moi/nfa/disaster", True),
        (MOI_ADMIN, "gov/motc/thb/traffic", False),
        (MOI_ADMIN, "gov", False),
        (MOI_MEMBER, "gov/moi/nfa/disaster", True),
        (MOI_MEMBER, "gov/moi/npa/police", False),
        (ROOT_AUDITOR, "gov/moi/nfa/disaster", False),
        (MOI_AUDITOR, "gov/moi/nfa/disaster", False),
        (AGENT, "gov/moi/nfa/disaster", False),
    ],
)
def test_require_mutate(principal: Principal, path: str, allowed: bool) -> None:
    if allowed:
        require_mutate(principal, path)
    else:
        with pytest.raises(Forbidden) as caught:
            require_mutate(principal, path)
        assert caught.value.code == "auth.forbidden"


def test_auditor_refusal_says_read_only() -> None:
    with pytest.raises(Forbidden, match="read-only"):
        require_mutate(ROOT_AUDITOR, "gov")


@pytest.mark.parametrize(
    "principal", [MOI_ADMIN, MOI_MEMBER, ROOT_AUDITOR, AGENT, who(Role.MINISTRY_ADMIN, "gov")]
)
def test_only_platform_admins_change_infrastructure(principal: Principal) -> None:
    require_platform_admin(PLATFORM)
    with pytest.raises(Forbidden):
        require_platform_admin(principal)


def test_infra_readers_are_root_scoped_admins_and_auditors() -> None:
    require_infra_reader(PLATFORM)
    require_infra_reader(ROOT_AUDITOR)
    for principal in (MOI_AUDITOR, MOI_ADMIN, MOI_MEMBER, AGENT, who(Role.MEMBER, "gov")):
        with pytest.raises(Forbidden):
            require_infra_reader(principal)


@pytest.mark.parametrize(
    ("principal", "path", "role", "allowed"),
    [
        (PLATFORM, "gov/moi", Role.MINISTRY_ADMIN, True),
        (PLATFORM, "gov", Role.PLATFORM_ADMIN, True),
        (MOI_ADMIN, "gov/moi/nfa", Role.MEMBER, True),
        (MOI_ADMIN, "gov/moi", Role.AUDITOR, True),
        (MOI_ADMIN, "gov/moi", Role.MINISTRY_ADMIN, False),
        (MOI_ADMIN, "gov/moi", Role.PLATFORM_ADMIN, False),
        (MOI_ADMIN, "gov/motc", Role.MEMBER, False),
        (MOI_MEMBER, "gov/moi/nfa", Role.MEMBER, False),
        (MOI_AUDITOR, "gov/moi", Role.MEMBER, False),
    ],
)
def test_require_user_admin(principal: Principal, path: str, role: Role, allowed: bool) -> None:
    if allowed:
        require_user_admin(principal, path, role)
    else:
        with pytest.raises(Forbidden):
            require_user_admin(principal, path, role)


def test_agents_act_only_for_their_own_host() -> None:
    require_agent_for(AGENT, "h-1")
    with pytest.raises(Forbidden) as caught:
        require_agent_for(AGENT, "h-2")
    assert caught.value.details == {"host": "h-2"}
    with pytest.raises(Forbidden):
        require_agent_for(PLATFORM, "h-1")  # even the platform admin is not an agent


def test_not_found_message_and_code() -> None:
    err = NotFound("instance", "i-9")
    assert err.code == "instance.not_found"
    assert err.details == {"kind": "instance", "id": "i-9"}
    assert "not found; list them with `govcloud " in err.message


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("instance", "govcloud server list"),
        ("server_group", "govcloud server group list"),
        ("flavor", "govcloud flavor list"),
    ],
)
def test_not_found_names_the_cli_command_that_lists_the_kind(kind: str, command: str) -> None:
    assert f"`{command}`" in NotFound(kind, "x").message
