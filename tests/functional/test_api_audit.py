"""The audit trail: one event per mutating call (successes and failures alike) carrying
the request id the caller saw, scoped reads, and append-only storage enforced by the
database itself on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.api_helper import Api, error


def event_for(api: Api, response: httpx.Response) -> dict[str, Any]:
    """The single audit event of ``response``'s request."""
    rid = response.headers["x-request-id"]
    events = api.audit(request_id=rid)
    assert len(events) == 1, (rid, events)
    return events[0]


def test_every_mutating_call_is_audited_with_its_request_id(api: Api) -> None:
    agent = api.register_host("tpe-h01")
    member = api.create_user("wang", "member", "nfa")
    calls: list[tuple[httpx.Response, str, str, str, str, int]] = []

    def record(
        response: httpx.Response, action: str, target_type: str, target: str, org: str
    ) -> None:
        calls.append((response, action, target_type, target, org, response.status_code))

    body = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    created = api.post("/v1/instances", json=body, expect=202)
    iid = created.json()["id"]
    record(created, "instance.create", "instance", iid, "gov/moi/nfa/disaster")
    record(
        api.post(f"/v1/instances/{iid}/stop", expect=202),
        "instance.stop",
        "instance",
        iid,
        "gov/moi/nfa/disaster",
    )
    record(
        api.post(f"/v1/instances/{iid}/start", expect=409),
        "instance.start",
        "instance",
        iid,
        "gov/moi/nfa/disaster",
    )
    record(
        api.delete(f"/v1/instances/{iid}", expect=202),
        "instance.delete",
        "instance",
        iid,
        "gov/moi/nfa/disaster",
    )
    record(
        api.post("/v1/instances", json=body | {"flavor": "nope"}, expect=404),
        "instance.create",
        "instance",
        "web-01",
        "gov/moi/nfa/disaster",
    )
    record(
        api.post("/v1/instances", json=body | {"name": "<bad>"}, expect=422),
        "instance.create",
        "instance",
        "",
        "gov",
    )
    record(
        api.post("/v1/instances", json=body | {"name": "m1"}, token=member, expect=202),
        "instance.create",
        "instance",
        "?",
        "gov/moi/nfa/disaster",
    )
    record(
        api.post(
            "/v1/flavors",
            json={"name": "x1", "vcpus": 1, "ram_mib": 512, "disk_gib": 1},
            expect=201,
        ),
        "flavor.create",
        "flavor",
        "x1",
        "gov",
    )
    record(
        api.post(
            "/v1/flavors",
            json={"name": "x2", "vcpus": 1, "ram_mib": 512, "disk_gib": 1},
            token=member,
            expect=403,
        ),
        "flavor.create",
        "flavor",
        "",
        "gov/moi/nfa",
    )
    record(api.delete("/v1/flavors/x1", expect=204), "flavor.delete", "flavor", "x1", "gov")
    record(api.delete("/v1/images/nope", expect=404), "image.delete", "image", "nope", "gov")
    record(
        api.patch("/v1/datacentres/tpe-1", json={"location": "Neihu"}, expect=200),
        "dc.update",
        "dc",
        "tpe-1",
        "gov",
    )
    record(
        api.post("/v1/orgs", json={"code": "npa", "name": "NPA", "parent": "moi"}, expect=201),
        "org.create",
        "org",
        "npa",
        "gov/moi/npa",
    )
    record(
        api.post(
            "/v1/users", json={"name": "lin", "role": "auditor", "organisation": "moi"}, expect=201
        ),
        "user.create",
        "user",
        "lin",
        "gov/moi",
    )
    record(
        api.patch(f"/v1/hosts/{agent.host_id}", json={"traits": ["ssd"]}, expect=200),
        "host.update",
        "host",
        agent.host_id,
        "gov",
    )
    record(
        api.post("/v1/hosts/bootstrap-tokens", json={"datacentre": "tpe-1"}, expect=201),
        "host.bootstrap_token",
        "dc",
        "tpe-1",
        "gov",
    )
    record(api.post("/v1/whoami", expect=405), "user.whoami", "user", "", "gov")
    record(
        api.post("/v1/no-such-thing", expect=404),
        "POST /v1/no-such-thing",
        "POST /v1/no-such-thing",
        "",
        "gov",
    )
    record(
        api.post(
            "/v1/orgs", json={"code": "x", "name": "x", "parent": "gov"}, token=None, expect=401
        ),
        "org.create",
        "org",
        "",
        "gov",
    )

    for response, action, target_type, target, org, status in calls:
        event = event_for(api, response)
        assert event["action"] == action, event
        assert event["target_type"] == target_type, event
        if target != "?":
            assert event["target_id"] == target, event
        assert event["organisation"] == org, event
        assert event["status_code"] == status, event
        assert event["outcome"] == ("success" if status < 400 else "failure"), event
        assert event["details"]["path"] == response.request.url.path
        if status >= 400:
            assert response.json()["request_id"] == event["request_id"]
    assert event_for(api, calls[6][0])["actor"] == "wang"
    assert event_for(api, calls[-1][0])["actor"] == "anonymous"


def test_reads_are_not_audited(api: Api) -> None:
    before = len(api.audit())
    for path in ("/v1/instances", "/v1/flavors", "/v1/orgs", "/v1/whoami", "/v1/audit"):
        api.get(path, expect=200)
    assert len(api.audit()) == before


def test_agent_calls(api: Api) -> None:
    agent = api.register_host("tpe-h01")
    registered = api.audit(action="agent.register")
    assert len(registered) == 1
    assert registered[0]["target_id"] == agent.host_id
    assert registered[0]["actor"] == "anonymous"
    assert registered[0]["outcome"] == "success"

    iid = api.create_instance("web-01")["id"]
    before = len(api.audit())
    agent.heartbeat(16, 32768, 500)  # telemetry: not audited
    agent.status(iid, "absent")  # changed nothing: not audited
    assert len(api.audit()) == before
    changed = agent.status(iid, "running")
    event = event_for(api, changed)
    assert (event["action"], event["actor"], event["target_id"]) == (
        "agent.status",
        "agent:tpe-h01",
        agent.host_id,
    )

    bad = api.client.post(
        "/v1/agent/register",
        json={
            "bootstrap_token": "gcb_" + "x" * 40,
            "name": "intruder",
            "capacity": {"vcpus": 1, "ram_mib": 1024, "disk_gib": 1},
            "libvirt_uri": "qemu:///system",
        },
    )
    error(bad, 401, "auth.unauthenticated")
    failed = event_for(api, bad)
    assert (failed["outcome"], failed["target_id"], failed["status_code"]) == (
        "failure",
        "intruder",
        401,
    )


def test_client_request_ids_are_honoured_when_well_formed(api: Api) -> None:
    response = api.post(
        "/v1/flavors", json={"name": "bad name"}, headers={"X-Request-Id": "ticket-42.a_b"}
    )
    body = error(response, 422, "request.invalid")
    assert body["request_id"] == "ticket-42.a_b"
    assert event_for(api, response)["request_id"] == "ticket-42.a_b"

    hostile = api.post("/v1/flavors", json={"name": "x"}, headers={"X-Request-Id": "a b<script>"})
    rid = hostile.headers["x-request-id"]
    assert rid.startswith("req-")
    assert "<" not in rid
    assert event_for(api, hostile)["request_id"] == rid


def test_audit_filters_and_paging(api: Api) -> None:
    for i in range(5):
        api.create_flavor(f"f{i}", 1, 512)
    creates = api.audit(action="flavor.create")
    assert [e["target_id"] for e in creates[:5]] == ["f4", "f3", "f2", "f1", "f0"]
    ids = [e["id"] for e in creates]
    assert ids == sorted(ids, reverse=True)
    page = api.audit(action="flavor.create", limit=2)
    assert [e["target_id"] for e in page] == ["f4", "f3"]
    nxt = api.audit(action="flavor.create", limit=2, before=page[-1]["id"])
    assert [e["target_id"] for e in nxt] == ["f2", "f1"]
    assert all(e["actor"] == "admin" for e in api.audit(actor="admin"))
    assert api.audit(actor="nobody") == []


def test_audit_is_scoped_to_the_readers_subtree(api: Api) -> None:
    api.register_host("h1")
    moi_auditor = api.create_user("moi-audit", "auditor", "moi")
    motc_auditor = api.create_user("motc-audit", "auditor", "motc")
    moi_vm = api.create_instance("moi-vm", "disaster")
    motc_vm = api.create_instance("motc-vm", "traffic")
    moi_seen = {e["target_id"] for e in api.audit(token=moi_auditor)}
    motc_seen = {e["target_id"] for e in api.audit(token=motc_auditor)}
    assert moi_vm["id"] in moi_seen
    assert motc_vm["id"] not in moi_seen
    assert motc_vm["id"] in motc_seen
    assert moi_vm["id"] not in motc_seen
    everything = {e["target_id"] for e in api.audit()}
    assert {moi_vm["id"], motc_vm["id"]} <= everything


# -- append-only, enforced by the database -------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'success'",
        "UPDATE audit_events SET actor = 'someone-else' WHERE id = 1",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE id = 1",
    ],
)
def test_audit_rows_cannot_be_changed_or_removed(api: Api, statement: str) -> None:
    api.post("/v1/flavors", json={"name": "<x>"}, expect=422)  # a failure event
    before = api.audit()
    assert before
    engine = api.store.db.engine
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert api.audit() == before
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    assert count == len(before)
    # inserting still works
    api.create_flavor("after", 1, 512)
    assert len(api.audit()) == len(before) + 1


def test_unexpected_errors_are_audited_too(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.store.flavors, "create", broken)
    response = api.post(
        "/v1/flavors", json={"name": "f1", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}
    )
    body = error(response, 500, "internal.error")
    assert "disk on fire" not in response.text  # no internals leak to the caller
    event = event_for(api, response)
    assert (event["action"], event["target_id"], event["outcome"], event["status_code"]) == (
        "flavor.create",
        "f1",
        "failure",
        500,
    )
    assert event["request_id"] == body["request_id"]
