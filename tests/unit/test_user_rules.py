"""The pure rules for managing users (``domain/auth.py``): who may rotate a token, change
a role or delete a user, and that every refusal names the field, the limit and the value."""

from __future__ import annotations

import pytest

from controlplane.domain.auth import (
    Principal,
    Role,
    User,
    require_role_change,
    require_token_rotation,
    require_user_deletion,
)
from controlplane.domain.errors import Forbidden


def caller(name: str, role: Role, path: str) -> Principal:
    return Principal(name=name, role=role, org_path=path)


def user(name: str, role: Role, path: str) -> User:
    return User(name=name, role=role, organisation=path.rsplit("/", 1)[-1], org_path=path)


PLATFORM = caller("admin", Role.PLATFORM_ADMIN, "gov")
MOI_ADMIN = caller("moi-admin", Role.MINISTRY_ADMIN, "gov/moi")
LIN = user("lin", Role.MEMBER, "gov/moi/nfa")
KAO = user("kao", Role.AUDITOR, "gov/moi")
OTHER_ADMIN = user("moi-admin-2", Role.MINISTRY_ADMIN, "gov/moi")
MOTC_MEMBER = user("wu", Role.MEMBER, "gov/motc")


@pytest.mark.parametrize(
    ("who", "target", "allowed"),
    [
        (caller("lin", Role.MEMBER, "gov/moi/nfa"), LIN, True),  # one's own
        (caller("kao", Role.AUDITOR, "gov/moi"), KAO, True),  # read-only, but one's own
        (caller("lin", Role.MEMBER, "gov/moi/nfa"), user("hsu", Role.MEMBER, "gov/moi/nfa"), False),
        (MOI_ADMIN, LIN, True),
        (MOI_ADMIN, OTHER_ADMIN, False),
        (MOI_ADMIN, MOTC_MEMBER, False),
        (PLATFORM, OTHER_ADMIN, True),
    ],
)
def test_token_rotation(who: Principal, target: User, allowed: bool) -> None:
    if allowed:
        require_token_rotation(who, target)
    else:
        with pytest.raises(Forbidden):
            require_token_rotation(who, target)


@pytest.mark.parametrize(
    ("who", "target", "role", "field"),
    [
        (MOI_ADMIN, LIN, Role.AUDITOR, None),
        (MOI_ADMIN, LIN, Role.MINISTRY_ADMIN, "role"),  # not up to one's own role
        (MOI_ADMIN, LIN, Role.PLATFORM_ADMIN, "role"),
        (MOI_ADMIN, OTHER_ADMIN, Role.MEMBER, "user.role"),  # not a peer's role either
        (PLATFORM, OTHER_ADMIN, Role.LAB_OPERATOR, None),
    ],
)
def test_role_change(who: Principal, target: User, role: Role, field: str | None) -> None:
    if field is None:
        require_role_change(who, target, role)
        return
    with pytest.raises(Forbidden) as caught:
        require_role_change(who, target, role)
    assert caught.value.details["field"] == field
    assert caught.value.details["limit"] == ["member", "auditor"]
    assert caught.value.details["value"] in (role.value, target.role.value)
    assert caught.value.message.startswith(f"{field}: ")


def test_nobody_deletes_themselves_and_admins_delete_whom_they_manage() -> None:
    require_user_deletion(MOI_ADMIN, LIN)
    require_user_deletion(PLATFORM, OTHER_ADMIN)
    with pytest.raises(Forbidden) as caught:
        require_user_deletion(PLATFORM, user("admin", Role.PLATFORM_ADMIN, "gov"))
    assert caught.value.details == {
        "field": "name",
        "limit": "another user than the caller",
        "value": "admin",
    }
    with pytest.raises(Forbidden):
        require_user_deletion(MOI_ADMIN, OTHER_ADMIN)
    with pytest.raises(Forbidden):
        require_user_deletion(caller("lin", Role.MEMBER, "gov/moi/nfa"), KAO)
