"""Cloud Open Lab through the API, on SQLite and PostgreSQL: the trial lifecycle driven by
the expiry loop on a fake clock (activation, warnings, expiry with servers stopped,
extension with approval, cleanup with a final usage record), stages with evidence and
sign-off by the right role, tenant isolation (vendors see only their own trials; another
ministry's admin gets 404), the catalogue, and input errors naming field, limit and value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from controlplane.reconciler.lab import LabLoop
from tests.api_helper import Agent, Api, error, fields_named

SHA = "0123456789abcdef" * 4


@dataclass
class Lab:
    api: Api
    agent: Agent
    loop: LabLoop
    operator: str
    cht: str  # a Chunghwa Telecom engineer (vendor member)
    fet: str  # a Far EasTone engineer (another vendor)
    moe_admin: str
    moe_member: str
    motc_admin: str
    root_auditor: str

    def request(self, name: str = "dictionary-poc", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "vendor": "cht", "ministry": "moe", "template": "poc-small"}
        body.update(fields)
        created: dict[str, Any] = self.api.post(
            "/v1/lab/trials", json=body, token=self.cht, expect=201
        ).json()
        return created

    def approve(self, trial_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.post(
            f"/v1/lab/trials/{trial_id}/approve", json={}, token=self.operator, expect=200
        ).json()
        return body

    def show(self, trial_id: str, token: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(
            f"/v1/lab/trials/{trial_id}", token=token or self.operator, expect=200
        ).json()
        return body

    def active(self, name: str = "dictionary-poc", **fields: Any) -> dict[str, Any]:
        trial = self.request(name, **fields)
        self.approve(trial["id"])
        self.loop.run_once()
        active: dict[str, Any] = self.show(trial["id"])["trial"]
        return active

    def advance_to(self, when: datetime) -> None:
        now = self.api.clock()
        if when > now:
            self.api.clock.advance(when - now)

    def evidence(self, trial_id: str, sha: str = SHA, **fields: Any) -> dict[str, Any]:
        body = {"name": "report.pdf", "sha256": sha, "size_bytes": 2048} | fields
        created: dict[str, Any] = self.api.post(
            f"/v1/lab/trials/{trial_id}/evidence", json=body, token=self.cht, expect=201
        ).json()
        return created

    def signoff(self, trial_id: str, token: str, expect: int = 200, **body: Any) -> Any:
        return self.api.post(
            f"/v1/lab/trials/{trial_id}/signoff", json=body, token=token, expect=expect
        )


@pytest.fixture
def lab(api: Api) -> Lab:
    api.create_org("moe", "gov")
    api.post("/v1/lab/vendors", json={"code": "cht", "name": "Chunghwa Telecom"}, expect=201)
    api.post("/v1/lab/vendors", json={"code": "fet", "name": "Far EasTone"}, expect=201)
    agent = api.register_host("lab-h01", vcpus=64, ram_mib=262144, disk_gib=4000)
    return Lab(
        api=api,
        agent=agent,
        loop=LabLoop(api.store, _policy(api), interval_s=60, clock=api.clock),
        operator=api.create_user("lab-op", "lab-operator", "openlab"),
        cht=api.create_user("cht-alice", "member", "cht"),
        fet=api.create_user("fet-bob", "member", "fet"),
        moe_admin=api.create_user("moe-admin", "ministry-admin", "moe"),
        moe_member=api.create_user("moe-carol", "member", "moe"),
        motc_admin=api.create_user("motc-admin", "ministry-admin", "motc"),
        root_auditor=api.create_user("auditor", "auditor", "gov"),
    )


def _policy(api: Api) -> Any:
    from controlplane.api.routes.lab import policy_of

    return policy_of(api.settings)


def _kinds(detail: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in detail["events"]]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_trial_lifecycle_warnings_expiry_and_cleanup(lab: Lab) -> None:
    api = lab.api
    trial = lab.request(ttl="14d")
    assert (trial["id"], trial["state"], trial["stage"]) == (
        "cht-dictionary-poc",
        "requested",
        "poc",
    )
    assert trial["project"] is None
    approved = lab.approve(trial["id"])
    assert approved["state"] == "approved"
    assert approved["project_path"] == "gov/openlab/cht/cht-dictionary-poc"
    # the project has the template's quota (openlab-trial class, lowered by poc-small)
    quota = api.get("/v1/quotas/cht-dictionary-poc", expect=200).json()["node"]
    assert quota["limits"]["instances"] == 8
    assert quota["soft_threshold"] == 0.75

    lab.loop.run_once()
    active = lab.show(trial["id"])["trial"]
    assert active["state"] == "active"
    ends = _at(active["ends_at"])
    assert ends - _at(active["activated_at"]) == timedelta(days=14)

    # the vendor works in its project: a server
    server = api.create_instance("dict-web", "cht-dictionary-poc", token=lab.cht)
    lab.agent.converge()
    assert api.instance(server["id"])["state"] == "RUNNING"

    lab.loop.run_once()  # nothing due: no new events
    assert _kinds(lab.show(trial["id"])).count("warning") == 0

    lab.advance_to(ends - timedelta(days=3))
    lab.loop.run_once()
    lab.loop.run_once()  # level-based: the same warning is not recorded twice
    detail = lab.show(trial["id"], token=lab.moe_member)  # observers see the warnings
    assert detail["trial"]["state"] == "expiring"
    assert _kinds(detail).count("warning") == 1
    lab.advance_to(ends - timedelta(days=1))
    lab.loop.run_once()
    detail = lab.show(trial["id"])
    assert [e["details"]["lead_hours"] for e in detail["events"] if e["kind"] == "warning"] == [
        72,
        24,
    ]

    lab.advance_to(ends)
    done = lab.loop.run_once()
    assert done.stopped == 1
    detail = lab.show(trial["id"])
    assert detail["trial"]["state"] == "expired"
    lab.agent.converge()
    assert api.instance(server["id"])["state"] == "STOPPED"
    # the project is frozen: no new servers
    error(
        api.post(
            "/v1/instances",
            json={
                "name": "late",
                "project": "cht-dictionary-poc",
                "flavor": "m1.small",
                "image": "cirros",
            },
            token=lab.cht,
        ),
        403,
        "quota.exceeded",
    )
    # restarted behind the loop's back: stopped again on the next pass
    api.act(server["id"], "start", token=lab.cht)
    lab.agent.converge()
    assert lab.loop.run_once().stopped == 1
    lab.agent.converge()

    # grace period (7 days): then the servers are deleted and the trial is cleaned
    lab.advance_to(ends + timedelta(days=7))
    assert lab.loop.run_once().deleted == 1
    assert lab.show(trial["id"])["trial"]["state"] == "expired"  # until the agent deleted it
    lab.agent.converge()
    assert lab.loop.run_once().cleaned == 1
    final = lab.show(trial["id"])
    assert final["trial"]["state"] == "cleaned"
    usage = final["trial"]["final_usage"]
    assert usage["instances"] == 1
    assert usage["vcpu_hours"] > 14 * 24 * 1  # m1.small: 1 vCPU held for 21 days
    assert final["usage"] == usage
    assert final["instances"] == []
    assert _kinds(final)[-1] == "cleaned"
    assert lab.loop.run_once().trials == 0  # nothing left to look after


def test_extension_needs_a_lab_operator_and_revives_an_expired_trial(lab: Lab) -> None:
    api = lab.api
    trial = lab.active()
    tid, ends = trial["id"], _at(trial["ends_at"])
    ext = api.post(
        f"/v1/lab/trials/{tid}/extensions",
        json={"by": "7d", "reason": "load tests"},
        token=lab.cht,
        expect=201,
    ).json()
    assert (ext["hours"], ext["state"]) == (168, "pending")
    # one pending request at a time
    error(api.post(f"/v1/lab/trials/{tid}/extensions", json={"by": "1d"}, token=lab.cht), 409)
    # the vendor, the ministry and an auditor cannot approve it
    for token in (lab.cht, lab.moe_admin, lab.moe_member):
        body = error(
            api.post(f"/v1/lab/trials/{tid}/extensions/approve", json={}, token=token), 403
        )
        assert body["code"] == "auth.forbidden"
    error(api.post(f"/v1/lab/trials/{tid}/extensions/approve", json={}, token=lab.motc_admin), 404)
    assert _at(lab.show(tid)["trial"]["ends_at"]) == ends  # unchanged until approved

    decided = api.post(
        f"/v1/lab/trials/{tid}/extensions/approve",
        json={"comment": "ok"},
        token=lab.operator,
        expect=200,
    ).json()
    assert decided["extension"]["state"] == "approved"
    assert _at(decided["trial"]["ends_at"]) == ends + timedelta(days=7)
    assert "extended" in _kinds(lab.show(tid))

    # expire it, then an approved extension during the grace period revives it
    new_end = ends + timedelta(days=7)
    lab.advance_to(new_end + timedelta(hours=1))
    lab.loop.run_once()
    assert lab.show(tid)["trial"]["state"] == "expired"
    api.post(f"/v1/lab/trials/{tid}/extensions", json={"by": "3d"}, token=lab.moe_admin, expect=201)
    revived = api.post(
        f"/v1/lab/trials/{tid}/extensions/approve", json={}, token=lab.operator, expect=200
    ).json()["trial"]
    assert revived["state"] == "expiring"  # 3 days left: inside the first warning's lead
    assert (
        api.get("/v1/quotas/cht-dictionary-poc", expect=200).json()["node"]["limits"]["instances"]
        == 8
    )  # unfrozen

    # too long: the error names the field, the limit and the value
    body = error(
        api.post(f"/v1/lab/trials/{tid}/extensions", json={"by": "90d"}, token=lab.cht), 400
    )
    assert (body["details"]["field"], body["details"]["value"]) == ("by", "90d")
    assert body["details"]["limit"] == "30d"  # poc-small's max_ttl


def test_vendors_see_only_their_own_trials(lab: Lab) -> None:
    api = lab.api
    trial = lab.request()
    tid = trial["id"]
    missing = "cht-nothing-here"
    for path in (
        f"/v1/lab/trials/{tid}",
        f"/v1/lab/trials/{tid}/events",
        f"/v1/lab/trials/{tid}/evidence",
    ):
        body = error(api.get(path, token=lab.fet), 404, "trial.not_found")
        twin = error(api.get(path.replace(tid, missing), token=lab.fet), 404)
        assert body["message"].replace(tid, missing) == twin["message"]
    error(api.post(f"/v1/lab/trials/{tid}/cancel", json={}, token=lab.fet), 404)
    assert api.get("/v1/lab/trials", token=lab.fet, expect=200).json() == []
    assert [v["code"] for v in api.get("/v1/lab/vendors", token=lab.fet, expect=200).json()] == [
        "fet"
    ]
    # and cannot ask for trials in another vendor's name
    error(
        api.post(
            "/v1/lab/trials",
            token=lab.fet,
            json={"name": "x", "vendor": "cht", "ministry": "moe", "template": "poc-small"},
        ),
        404,
        "vendor.not_found",
    )
    # the ministry's staff see it (observers); another ministry does not
    assert [
        t["id"] for t in api.get("/v1/lab/trials", token=lab.moe_member, expect=200).json()
    ] == [tid]
    assert api.get("/v1/lab/trials", token=lab.motc_admin, expect=200).json() == []
    error(api.get(f"/v1/lab/trials/{tid}", token=lab.motc_admin), 404, "trial.not_found")
    # another ministry's admin cannot approve (as if it did not exist); nor can moe's admin
    error(api.post(f"/v1/lab/trials/{tid}/approve", json={}, token=lab.motc_admin), 404)
    body = error(api.post(f"/v1/lab/trials/{tid}/approve", json={}, token=lab.moe_admin), 403)
    assert body["details"]["required_role"] == "lab-operator"
    error(api.post(f"/v1/lab/trials/{tid}/approve", json={}, token=lab.cht), 403)
    assert lab.show(tid)["trial"]["state"] == "requested"
    # the auditor reads everything and changes nothing
    assert lab.show(tid, token=lab.root_auditor)["trial"]["id"] == tid
    error(api.post(f"/v1/lab/trials/{tid}/cancel", json={}, token=lab.root_auditor), 403)
    # members and observers are listed
    detail = lab.show(tid)
    assert detail["members"] == ["cht-alice"]
    assert detail["observers"] == ["moe-admin", "moe-carol"]


def test_stages_need_evidence_and_the_right_signer(lab: Lab) -> None:
    api = lab.api
    tid = lab.active()["id"]
    body = error(lab.signoff(tid, lab.moe_admin, expect=409), 409, "lab.evidence_missing")
    assert "evidence" in body["message"]
    lab.evidence(tid, kind="scenario-result", results={"p95_latency_ms": 180.0})
    # the vendor never signs its own trial; members and other ministries cannot either
    body = error(lab.signoff(tid, lab.cht, expect=403), 403)
    assert "never sign off its own" in body["message"]
    error(lab.signoff(tid, lab.moe_member, expect=403), 403)
    error(lab.signoff(tid, lab.operator, expect=403), 403)  # PoC is the ministry's call
    error(lab.signoff(tid, lab.motc_admin, expect=404), 404, "trial.not_found")

    poc = lab.signoff(tid, lab.moe_admin, stage="poc", comment="meets needs").json()
    assert poc["trial"]["stage"] == "verification"
    assert poc["signoff"]["role"] == "ministry-admin"
    assert len(poc["signoff"]["evidence"]) == 1
    # signing the stage that just passed is refused (double submit)
    error(lab.signoff(tid, lab.moe_admin, expect=409, stage="poc"), 409, "lab.stage_mismatch")

    lab.evidence(
        tid,
        sha="f" * 64,
        name="stress.json",
        kind="scenario-result",
        results={"connections": 150000.0, "p95_latency_ms": 120.0},
    )
    lab.signoff(tid, lab.moe_admin)
    lab.evidence(tid, sha="e" * 64, name="certificate-checklist.pdf")
    body = error(lab.signoff(tid, lab.moe_admin, expect=403), 403)
    assert body["details"]["required_role"] == "lab-operator"
    # a vendor's lab-operator account is still the vendor
    vendor_operator = api.create_user("cht-op", "lab-operator", "cht")
    error(lab.signoff(tid, vendor_operator, expect=403), 403)
    certified = lab.signoff(tid, lab.operator).json()["trial"]
    assert certified["stage"] == "certified"
    error(lab.signoff(tid, lab.operator, expect=409), 409, "lab.already_certified")
    error(
        api.post(
            f"/v1/lab/trials/{tid}/evidence",
            token=lab.cht,
            json={"name": "late", "sha256": "d" * 64, "size_bytes": 1},
        ),
        409,
        "lab.already_certified",
    )
    kinds = _kinds(lab.show(tid))
    assert kinds.count("signed-off") == 3
    assert kinds.count("evidence") == 3

    # certify once, use everywhere: any ministry browses it; other vendors do not
    entries = api.get("/v1/lab/catalog", token=lab.motc_admin, expect=200).json()
    assert [e["trial_id"] for e in entries] == [tid]
    assert entries[0]["results"] == {"p95_latency_ms": 120.0, "connections": 150000.0}
    assert [s["stage"] for s in entries[0]["signoffs"]] == ["poc", "verification", "certification"]
    assert api.get("/v1/lab/catalog", token=lab.fet, expect=200).json() == []
    error(api.get(f"/v1/lab/catalog/{tid}", token=lab.fet), 404)
    assert api.get(f"/v1/lab/catalog/{tid}", token=lab.cht, expect=200).json()["offering"] == (
        "dictionary-poc"
    )
    # every transition is in the audit trail too
    actions = {e["action"] for e in api.audit()}
    assert {"lab.trial_create", "lab.trial_approve", "lab.evidence_add", "lab.signoff"} <= actions


def test_invalid_input_names_field_limit_and_value(lab: Lab) -> None:
    api = lab.api

    def create(**fields: Any) -> Any:
        body = {"name": "ok", "vendor": "cht", "ministry": "moe", "template": "poc-small"}
        return api.post("/v1/lab/trials", json=body | fields, token=lab.cht)

    body = error(create(ttl="45d"), 400, "lab.duration_out_of_range")
    assert body["details"] == {"field": "ttl", "value": "45d", "limit": "30d"}
    body = error(create(ttl="soon"), 422, "request.invalid")
    assert fields_named(body) == {"ttl"}
    body = error(create(name="a-very-long-trial-name-for-ch"), 400)
    assert (body["details"]["field"], body["details"]["limit"]) == ("name", 28)
    error(create(template="nope"), 404)
    error(create(ministry="nfa"), 400)  # an agency, not a ministry
    error(create(ministry="nowhere"), 404, "org.not_found")
    body = error(create(Name="x"), 422)
    tid = lab.active()["id"]
    body = error(
        api.post(
            f"/v1/lab/trials/{tid}/evidence",
            token=lab.cht,
            json={"name": "r", "sha256": "XYZ", "size_bytes": -1},
        ),
        422,
    )
    assert fields_named(body) == {"sha256", "size_bytes"}
    body = error(
        api.post(
            f"/v1/lab/trials/{tid}/evidence",
            token=lab.cht,
            json={"name": "r", "sha256": SHA, "size_bytes": 1, "stage": "certification"},
        ),
        400,
        "lab.stage_mismatch",
    )
    assert body["details"] == {"field": "stage", "value": "certification", "limit": "poc"}
    lab.evidence(tid)
    error(
        api.post(
            f"/v1/lab/trials/{tid}/evidence",
            token=lab.cht,
            json={"name": "again", "sha256": SHA, "size_bytes": 1},
        ),
        409,
    )
    # state errors name the state and what is allowed
    body = error(api.post(f"/v1/lab/trials/{tid}/approve", json={}, token=lab.operator), 409)
    assert body["details"]["state"] == "active"
    # no 500 anywhere above
    assert all(e["status_code"] < 500 for e in api.audit())


def test_ministry_trial_env_quota_limits_approvals(lab: Lab) -> None:
    api = lab.api
    api.patch("/v1/quotas/moe", json={"limits": {"trial_envs": 1}}, expect=200)
    lab.active("first")
    second = lab.request("second")
    body = error(
        api.post(f"/v1/lab/trials/{second['id']}/approve", json={}, token=lab.operator),
        403,
        "quota.exceeded",
    )
    assert "trial_envs" in body["message"]
    assert lab.show(second["id"])["trial"]["state"] == "requested"
    # rejected and cancelled paths
    rejected = api.post(
        f"/v1/lab/trials/{second['id']}/reject",
        json={"comment": "no room"},
        token=lab.operator,
        expect=200,
    ).json()
    assert rejected["state"] == "rejected"
    third = lab.request("third")
    cancelled = api.post(
        f"/v1/lab/trials/{third['id']}/cancel", json={}, token=lab.cht, expect=200
    ).json()
    assert cancelled["state"] == "cancelled"
    # ending the first early frees nothing until it is cleaned, then the slot is back
    api.post(
        "/v1/lab/trials/cht-first/cancel", json={"reason": "done"}, token=lab.moe_admin, expect=200
    )
    assert lab.show("cht-first")["trial"]["state"] == "expired"
    lab.advance_to(api.clock() + timedelta(days=7))
    lab.loop.run_once()
    assert lab.show("cht-first")["trial"]["state"] == "cleaned"
    lab.active("fourth")
