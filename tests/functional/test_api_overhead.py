"""What the fast request path of ``POST /v1/instances`` must not weaken.

- Authentication is cached per token for ``auth_cache_ttl_s``: a token revoked or a role
  changed through a replica takes effect there at once, and on other replicas within the
  TTL (0 turns the cache off); unknown tokens are never cached.
- The create's audit event is written in the transaction that creates the instance: one
  event, no second transaction; a failed create leaves only its failure event; an answer
  that fails after the commit is audited as well; concurrent creates whose claims race
  (re-planned after a rollback) still get exactly one event each.
- Every response carries exactly one ``X-Request-Id``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from controlplane.domain.auth import Role
from controlplane.domain.instance import Instance
from controlplane.store.user import anyone
from tests.api_helper import Api, error


class FakeMonotonic:
    """A monotonic clock for the principal cache, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def whoami(api: Api, token: str, expect: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/v1/whoami", token=token, expect=expect).json()
    return body


def test_rotated_token_is_refused_at_once_by_the_replica_that_rotated_it(api: Api) -> None:
    token = api.create_user("chen", "member", "nfa")
    assert whoami(api, token)["name"] == "chen"  # now cached
    assert api.store.users.cached(token) is not None
    new = api.store.users.rotate_token("chen", authorize=anyone)
    error(api.get("/v1/whoami", token=token), 401, "auth.unauthenticated")
    assert whoami(api, new)["name"] == "chen"


def test_role_change_takes_effect_at_once(api: Api) -> None:
    token = api.create_user("lin", "member", "nfa")
    body = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    api.post("/v1/instances", json=body, token=token, expect=202)  # member: cached
    api.store.users.set_role("lin", Role.AUDITOR, authorize=anyone)
    assert whoami(api, token)["role"] == "auditor"
    error(api.post("/v1/instances", json=body | {"name": "web-02"}, token=token), 403)


def test_other_replicas_see_a_revocation_within_the_ttl(
    api: Api, api_factory: Callable[..., Api]
) -> None:
    token = api.create_user("wu", "member", "nfa")
    other = api_factory(api.url, migrate=False, auth_cache_ttl_s=5.0)
    clock = FakeMonotonic()
    other.store.users.cache.now = clock
    assert whoami(other, token)["name"] == "wu"
    api.store.users.rotate_token("wu", authorize=anyone)  # through the first replica
    clock.now += 4.0
    assert whoami(other, token)["name"] == "wu"  # still trusted: within the TTL
    clock.now += 1.0
    error(other.get("/v1/whoami", token=token), 401, "auth.unauthenticated")


def test_a_zero_ttl_turns_the_cache_off(api: Api, api_factory: Callable[..., Api]) -> None:
    token = api.create_user("hsu", "member", "nfa")
    other = api_factory(api.url, migrate=False, auth_cache_ttl_s=0)
    assert whoami(other, token)["name"] == "hsu"
    assert other.store.users.cached(token) is None
    api.store.users.rotate_token("hsu", authorize=anyone)
    error(other.get("/v1/whoami", token=token), 401, "auth.unauthenticated")


def test_unknown_tokens_are_not_cached(api: Api) -> None:
    token = "gcu_not-yet-issued-token-0123456789"
    error(api.get("/v1/whoami", token=token), 401, "auth.unauthenticated")
    api.store.users.create("kao", Role.MEMBER, "nfa", token)
    assert whoami(api, token)["name"] == "kao"


def test_the_create_is_audited_in_the_transaction_that_creates(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended: list[Any] = []
    monkeypatch.setattr(api.store.audit, "append", appended.append)
    body = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    response = api.post("/v1/instances", json=body, expect=202)
    failed = api.post("/v1/instances", json=body | {"flavor": "nope"}, expect=404)
    monkeypatch.undo()

    assert len(appended) == 1  # only the failure took the separate path
    assert appended[0].request_id == failed.headers["x-request-id"]
    api.store.audit.append(appended[0])
    (event,) = api.audit(request_id=response.headers["x-request-id"])
    assert event["target_id"] == response.json()["id"]
    assert (event["action"], event["outcome"], event["status_code"]) == (
        "instance.create",
        "success",
        202,
    )
    assert (event["actor"], event["organisation"]) == ("admin", "gov/moi/nfa/disaster")
    (failure,) = api.audit(request_id=failed.headers["x-request-id"])
    assert (failure["outcome"], failure["status_code"], failure["target_id"]) == (
        "failure",
        404,
        "web-01",
    )


def test_an_answer_failing_after_the_commit_is_audited_too(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Instance, **_kwargs: Any) -> str:
        raise RuntimeError("cannot render")

    monkeypatch.setattr(Instance, "model_dump_json", boom)
    body = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    response = api.post("/v1/instances", json=body)
    monkeypatch.undo()
    error(response, 500, "internal.error")
    events = api.audit(request_id=response.headers["x-request-id"])
    assert sorted(e["status_code"] for e in events) == [202, 500]  # created, then failed
    (created,) = api.get("/v1/instances", params={"name": "web-01"}, expect=200).json()["items"]
    assert {e["target_id"] for e in events} == {created["id"]}


def test_every_response_has_one_request_id(api: Api) -> None:
    body = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    for response in (
        api.post("/v1/instances", json=body, expect=202),
        api.post("/v1/instances", json=body | {"flavor": "nope"}, expect=404),
        api.post("/v1/instances", json=body | {"name": "<bad>"}, expect=422),
        api.get("/v1/whoami", token=None, expect=401),
        api.get("/v1/no-such-thing", expect=404),
        api.get("/v1/whoami", headers={"X-Request-Id": "mine-1"}, expect=200),
    ):
        assert len(response.headers.get_list("x-request-id")) == 1, response.headers
    assert response.headers["x-request-id"] == "mine-1"


def test_concurrent_creates_each_have_exactly_one_event(
    api: Api, api_factory: Callable[..., Api]
) -> None:
    # Small hosts (room for a few m1.small each) so that racing claims conflict and are
    # re-planned: a rolled-back attempt must leave no event behind, the retry one.
    for i in range(4):
        api.register_host(f"tpe-h{i:02d}", vcpus=2, ram_mib=4096, disk_gib=40)
    replicas = [api, api_factory(api.url, migrate=False)]
    body = {"project": "disaster", "flavor": "m1.small", "image": "cirros"}

    def create(i: int) -> httpx.Response:
        return replicas[i % 2].post("/v1/instances", json=body | {"name": f"vm-{i:02d}"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(create, range(24)))
    assert {r.status_code for r in responses} == {202}
    assert {r.json()["state"] for r in responses} >= {"SCHEDULED"}
    for response in responses:
        (event,) = api.audit(request_id=response.headers["x-request-id"])
        assert (event["target_id"], event["status_code"]) == (response.json()["id"], 202)
