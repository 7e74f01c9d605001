"""User management through the API on SQLite and PostgreSQL: rotating a token, changing a
role and deleting a user, each within the caller's scope and role, never leaving the
platform without a platform-admin, tenant isolated and audited (success and refusal)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest

from controlplane.domain.auth import Role
from controlplane.domain.errors import Conflict
from controlplane.store.user import anyone
from tests.api_helper import ADMIN_TOKEN, Api, error, fields_named

pytestmark = pytest.mark.usefixtures("backend")


@dataclass
class Users:
    """Tokens of users in both ministries (admin is the built-in platform-admin)."""

    api: Api
    moi_admin: str
    moi_member: str
    motc_admin: str
    motc_member: str


@pytest.fixture
def users(api: Api) -> Users:
    return Users(
        api=api,
        moi_admin=api.create_user("moi-admin", "ministry-admin", "moi"),
        moi_member=api.create_user("moi-member", "member", "disaster"),
        motc_admin=api.create_user("motc-admin", "ministry-admin", "motc"),
        motc_member=api.create_user("motc-member", "member", "traffic"),
    )


def whoami(api: Api, token: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/v1/whoami", token=token, expect=200).json()
    return body


def rotate(api: Api, name: str, token: str = ADMIN_TOKEN, expect: int = 200) -> Any:
    return api.post(f"/v1/users/{name}/token", token=token, expect=expect).json()


def set_role(api: Api, name: str, role: str, token: str = ADMIN_TOKEN, expect: int = 200) -> Any:
    return api.patch(f"/v1/users/{name}", json={"role": role}, token=token, expect=expect).json()


def names(api: Api, token: str = ADMIN_TOKEN) -> set[str]:
    return {u["name"] for u in api.get("/v1/users", token=token, expect=200).json()}


def last_event(api: Api, action: str) -> dict[str, Any]:
    return api.audit(action=action)[0]


# -- rotate-token -------------------------------------------------------------------------


def test_a_user_rotates_their_own_token_and_the_old_one_stops_at_once(users: Users) -> None:
    api, old = users.api, users.moi_member
    assert whoami(api, old)["name"] == "moi-member"  # cached now
    response = api.post("/v1/users/moi-member/token", token=old, expect=200)
    body = response.json()
    assert body["user"] == {
        "name": "moi-member",
        "role": "member",
        "organisation": "disaster",
        "org_path": "gov/moi/nfa/disaster",
    }
    error(api.get("/v1/whoami", token=old), 401, "auth.unauthenticated")
    assert whoami(api, body["token"])["name"] == "moi-member"
    event = last_event(api, "user.rotate_token")
    assert (event["actor"], event["target_type"], event["target_id"]) == (
        "moi-member",
        "user",
        "moi-member",
    )
    assert event["organisation"] == "gov/moi/nfa/disaster"
    assert (event["outcome"], event["status_code"]) == ("success", 200)
    assert event["request_id"] == response.headers["x-request-id"]
    assert body["token"] not in str(api.audit())  # the secret is never audited


def test_auditors_may_rotate_their_own_token(api: Api) -> None:
    token = api.create_user("moi-auditor", "auditor", "moi")
    new = rotate(api, "moi-auditor", token)["token"]
    assert whoami(api, new)["role"] == "auditor"


def test_ministry_admins_rotate_tokens_only_of_users_they_manage(users: Users) -> None:
    api = users.api
    new = rotate(api, "moi-member", users.moi_admin)["token"]
    assert whoami(api, new)["name"] == "moi-member"
    error(api.get("/v1/whoami", token=users.moi_member), 401)

    api.create_user("moi-admin-2", "ministry-admin", "moi")
    body = error(api.post("/v1/users/moi-admin-2/token", token=users.moi_admin), 403)
    assert body["details"]["field"] == "user.role"
    assert body["details"]["limit"] == ["member", "auditor"]
    assert body["details"]["value"] == "ministry-admin"
    assert "user.role" in body["message"]
    assert "ministry-admin" in body["message"]

    # Other ministries' users and those above the caller do not exist for it.
    for name in ("motc-member", "admin", "nobody"):
        error(api.post(f"/v1/users/{name}/token", token=users.moi_admin), 404, "user.not_found")
    error(api.post("/v1/users/moi-member/token", token=users.motc_member), 404)
    api.create_user("motc-member-2", "member", "traffic")
    refused = error(api.post("/v1/users/motc-member-2/token", token=users.motc_member), 403)
    assert refused["details"]["field"] == "user.role"
    assert refused["details"]["limit"] == []


# -- set-role -----------------------------------------------------------------------------


def test_a_role_change_applies_at_once_and_is_audited(users: Users) -> None:
    api, token = users.api, users.moi_member
    assert whoami(api, token)["role"] == "member"  # cached now
    response = api.patch("/v1/users/moi-member", json={"role": "auditor"}, token=users.moi_admin)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "auditor"
    assert whoami(api, token)["role"] == "auditor"
    event = last_event(api, "user.update")
    assert (event["actor"], event["target_id"], event["outcome"]) == (
        "moi-admin",
        "moi-member",
        "success",
    )
    assert event["organisation"] == "gov/moi/nfa/disaster"
    assert event["request_id"] == response.headers["x-request-id"]


def test_nobody_gives_a_role_above_what_they_may_grant(users: Users) -> None:
    api = users.api
    for role in ("ministry-admin", "platform-admin", "lab-operator"):
        body = error(
            api.patch("/v1/users/moi-member", json={"role": role}, token=users.moi_admin),
            403,
            "auth.forbidden",
        )
        assert body["details"] | {"role": "ministry-admin"} == {
            "field": "role",
            "limit": ["member", "auditor"],
            "value": role,
            "role": "ministry-admin",
        }
        assert f"not {role}" in body["message"]
    # Not even oneself: a ministry-admin does not manage ministry-admins.
    error(api.patch("/v1/users/moi-admin", json={"role": "member"}, token=users.moi_admin), 403)
    error(api.patch("/v1/users/moi-member", json={"role": "auditor"}, token=users.moi_member), 403)
    assert whoami(api, users.moi_member)["role"] == "member"
    refused = api.audit(action="user.update")
    assert {e["outcome"] for e in refused} == {"failure"}
    assert {e["status_code"] for e in refused} == {403}


def test_a_ministry_admin_never_sees_or_touches_another_ministrys_users(users: Users) -> None:
    api = users.api
    assert names(api, users.moi_admin) == {"moi-admin", "moi-member"}
    assert names(api, users.motc_admin) == {"motc-admin", "motc-member"}
    error(
        api.patch("/v1/users/motc-member", json={"role": "auditor"}, token=users.moi_admin),
        404,
        "user.not_found",
    )
    error(api.delete("/v1/users/motc-member", token=users.moi_admin), 404, "user.not_found")
    assert whoami(api, users.motc_member)["role"] == "member"
    # The refused attempts are audited in the caller's scope, not in the other ministry's.
    motc_view = {e["action"] for e in api.audit(token=users.motc_admin)}
    assert "user.update" not in motc_view
    assert "user.delete" not in motc_view
    moi_view = api.audit(token=users.moi_admin, actor="moi-admin")
    assert {(e["action"], e["status_code"]) for e in moi_view} >= {
        ("user.update", 404),
        ("user.delete", 404),
    }


def test_the_last_platform_admin_keeps_the_role(api: Api) -> None:
    body = error(
        api.patch("/v1/users/admin", json={"role": "member"}), 409, "user.last_platform_admin"
    )
    assert body["details"] == {
        "field": "role",
        "limit": "at least 1 platform-admin",
        "value": "member",
    }
    assert "last platform-admin" in body["message"]
    assert whoami(api, ADMIN_TOKEN)["role"] == "platform-admin"

    second = api.create_user("ops", "platform-admin", "gov")
    assert set_role(api, "admin", "member", second)["role"] == "member"
    error(api.patch("/v1/users/ops", json={"role": "auditor"}, token=second), 409)
    # The store refuses a delete of the last one too (no API caller can reach it: only a
    # platform-admin may delete one, and never themselves).
    with pytest.raises(Conflict) as caught:
        api.store.users.delete("ops", authorize=anyone)
    assert caught.value.details["field"] == "name"


def demote_at_once(api: Api, names: list[str]) -> list[str]:
    """Demote every user in ``names`` to member, all starting together; the outcomes."""
    barrier = threading.Barrier(len(names))
    outcomes: dict[str, str] = {}

    def demote(name: str) -> None:
        barrier.wait()
        try:
            api.store.users.set_role(name, Role.MEMBER, authorize=anyone)
            outcomes[name] = "demoted"
        except Conflict:
            outcomes[name] = "refused"

    threads = [threading.Thread(target=demote, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes.values())


def test_two_platform_admins_demoted_at_once_leave_one(api: Api) -> None:
    """Each demotion alone is allowed; together they would leave none (the rows of every
    platform-admin are locked in one order, so the second sees the first's outcome)."""
    for round_ in range(4):
        others = [f"pa-{round_}-a", f"pa-{round_}-b"]
        for name in others:
            api.store.users.create(name, Role.PLATFORM_ADMIN, "gov")
        api.store.users.set_role("admin", Role.MEMBER, authorize=anyone)  # only the two are left
        assert demote_at_once(api, others) == ["demoted", "refused"]
        admins = [u.name for u in api.store.users.list("gov") if u.role is Role.PLATFORM_ADMIN]
        assert len(admins) == 1
        api.store.users.set_role("admin", Role.PLATFORM_ADMIN, authorize=anyone)
        api.store.users.delete(admins[0], authorize=anyone)


def test_role_changes_are_validated_with_the_field_named(users: Users) -> None:
    api = users.api
    for body in ({"role": "agent"}, {"role": "root"}, {}, {"role": "member", "org": "moi"}):
        problem = error(api.patch("/v1/users/moi-member", json=body), 422)
        assert fields_named(problem) & {"role", "org"}, problem


# -- delete -------------------------------------------------------------------------------


def test_deleting_a_user_revokes_the_token_and_keeps_the_audit_trail(users: Users) -> None:
    api, token = users.api, users.moi_member
    api.post(
        "/v1/orgs", json={"code": "x1", "name": "X", "parent": "disaster"}, token=token, expect=403
    )
    assert whoami(api, token)["name"] == "moi-member"  # cached now
    response = api.delete("/v1/users/moi-member", token=users.moi_admin)
    assert response.status_code == 204, response.text
    error(api.get("/v1/whoami", token=token), 401, "auth.unauthenticated")
    assert "moi-member" not in names(api)
    error(api.delete("/v1/users/moi-member", token=users.moi_admin), 404, "user.not_found")
    event = last_event(api, "user.delete")
    assert (event["actor"], event["target_id"], event["status_code"]) == (
        "moi-admin",
        "moi-member",
        404,
    )
    done = [e for e in api.audit(action="user.delete") if e["outcome"] == "success"]
    assert [(e["target_id"], e["organisation"]) for e in done] == [
        ("moi-member", "gov/moi/nfa/disaster")
    ]
    assert done[0]["request_id"] == response.headers["x-request-id"]
    assert api.audit(actor="moi-member")  # its own events keep its name
    # The name is free again; the new user gets a new token.
    again = api.create_user("moi-member", "member", "nfa")
    assert whoami(api, again)["name"] == "moi-member"


def test_deletion_follows_the_same_rules(users: Users) -> None:
    api = users.api
    body = error(api.delete("/v1/users/moi-admin", token=users.moi_admin), 403)
    assert body["details"] == {
        "field": "name",
        "limit": "another user than the caller",
        "value": "moi-admin",
    }
    body = error(api.delete("/v1/users/admin"), 403)
    assert body["details"]["field"] == "name"
    api.create_user("moi-admin-2", "ministry-admin", "nfa")
    body = error(api.delete("/v1/users/moi-admin-2", token=users.moi_admin), 403)
    assert body["details"]["field"] == "user.role"
    api.create_user("moi-member-2", "member", "disaster")
    error(api.delete("/v1/users/moi-member-2", token=users.moi_member), 403)
    api.delete("/v1/users/moi-admin-2", expect=204)  # a platform-admin manages anyone
    api.delete("/v1/users/moi-member-2", token=users.moi_admin, expect=204)
    assert names(api) == {"admin", "moi-admin", "moi-member", "motc-admin", "motc-member"}


def test_host_agents_cannot_manage_users(users: Users) -> None:
    api = users.api
    agent = api.register_host("tpe-h01")
    for method, path, body in (
        ("POST", "/v1/users/moi-member/token", None),
        ("PATCH", "/v1/users/moi-member", {"role": "auditor"}),
        ("DELETE", "/v1/users/moi-member", None),
    ):
        response = api.client.request(method, path, json=body, headers=agent.headers)
        error(response, 403, "auth.forbidden")
    assert whoami(api, users.moi_member)["role"] == "member"
