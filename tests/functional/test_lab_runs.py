"""Cloud Open Lab scenario runs and promotion through the API, on SQLite and PostgreSQL:
a run provisions its groups in the trial's project, the host's agent (the stand-in of
tests/api_helper.py) gets the loads and reports samples, the run measures peak/p95/mean per
group and removes everything it created; cancelling removes everything too; sizing input
comes from the latest completed run; ``promote`` moves servers into a ministry's project
with its quota checked. A fake clock drives the run's phases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from controlplane.api.routes.lab import policy_of
from controlplane.reconciler.lab import LabLoop
from tests.api_helper import Agent, Api, error

SCENARIO: dict[str, Any] = {
    "name": "dict-peak",
    "duration_s": 60,
    "sample_interval_s": 10,
    "groups": [
        {
            "name": "web",
            "flavor": "m1.small",
            "image": "cirros",
            "count": 2,
            "server_group": "soft-anti-affinity",
            "load": {"cpu": {"shape": "sine", "low": 0.2, "high": 0.8, "period_s": 60}},
        },
        {"name": "db", "flavor": "m1.medium", "image": "cirros", "count": 1},
    ],
}


@dataclass
class Lab:
    api: Api
    agent: Agent
    loop: LabLoop
    operator: str
    cht: str
    fet: str
    moe_admin: str
    trial: str

    def advance(self, seconds: float) -> None:
        self.api.clock.advance(timedelta(seconds=seconds))

    def run(self, run_id: str, token: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(
            f"/v1/lab/runs/{run_id}", token=token or self.cht, expect=200
        ).json()
        return body

    def usage(self, *samples: dict[str, Any], expect: int = 204) -> None:
        self.api.client.post(
            f"/v1/lab/hosts/{self.agent.host_id}/usage",
            json={"samples": list(samples)},
            headers=self.agent.headers,
        ).raise_for_status() if expect == 204 else None

    def loads(self) -> dict[str, Any]:
        response = self.api.client.get(
            f"/v1/lab/hosts/{self.agent.host_id}/loads", headers=self.agent.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def lab(api: Api) -> Lab:
    api.create_org("moe", "gov")
    api.create_org("naer", "moe")
    api.create_org("dict-prod", "naer")
    api.post("/v1/lab/vendors", json={"code": "cht", "name": "Chunghwa Telecom"}, expect=201)
    api.post("/v1/lab/vendors", json={"code": "fet", "name": "Far EasTone"}, expect=201)
    agent = api.register_host("lab-h01", vcpus=64, ram_mib=262144, disk_gib=4000)
    operator = api.create_user("lab-op", "lab-operator", "openlab")
    cht = api.create_user("cht-alice", "member", "cht")
    loop = LabLoop(api.store, policy_of(api.settings), interval_s=60, clock=api.clock)
    trial = api.post(
        "/v1/lab/trials",
        json={
            "name": "dictionary-poc",
            "vendor": "cht",
            "ministry": "moe",
            "template": "poc-small",
        },
        token=cht,
        expect=201,
    ).json()["id"]
    api.post(f"/v1/lab/trials/{trial}/approve", json={}, token=operator, expect=200)
    loop.run_once()
    return Lab(
        api=api,
        agent=agent,
        loop=loop,
        operator=operator,
        cht=cht,
        fet=api.create_user("fet-bob", "member", "fet"),
        moe_admin=api.create_user("moe-admin", "ministry-admin", "moe"),
        trial=trial,
    )


def _servers(lab: Lab) -> list[dict[str, Any]]:
    return [s for s in lab.api.instances() if s["project"] == lab.trial and s["state"] != "DELETED"]


def test_run_provisions_loads_measures_and_cleans_up(lab: Lab) -> None:
    api = lab.api
    run = api.post(
        f"/v1/lab/trials/{lab.trial}/runs", json=SCENARIO, token=lab.cht, expect=201
    ).json()
    assert (run["state"], run["vms"], run["failed"]) == ("provisioning", 3, 0)
    assert len(_servers(lab)) == 3
    assert len(api.get("/v1/server-groups", expect=200).json()) == 1
    # a second run while this one is in progress is refused
    busy = api.post(f"/v1/lab/trials/{lab.trial}/runs", json=SCENARIO, token=lab.cht)
    assert error(busy, 409, "lab_run.busy")["message"].startswith("trial cht-dictionary-poc")
    assert lab.loads()["loads"] == []  # nothing is loading yet

    lab.advance(7)
    lab.agent.converge()  # every VM comes up
    lab.loop.advance_runs()
    run = lab.run(run["id"])
    assert (run["state"], run["running"]) == ("loading", 3)
    loads = lab.loads()
    assert loads["sample_interval_s"] == 10
    by_id = {x["instance_id"]: x["profile"] for x in loads["loads"]}
    assert len(by_id) == 3
    assert sorted(p["cpu"]["shape"] for p in by_id.values()) == ["constant", "sine", "sine"]

    web = [i for i, p in by_id.items() if p["cpu"]["shape"] == "sine"]
    (db,) = [i for i, p in by_id.items() if p["cpu"]["shape"] == "constant"]
    for step, cpu in enumerate((0.2, 0.5, 0.8, 0.5, 0.2)):
        lab.usage(
            *[{"instance_id": i, "cpu": cpu, "ram": 0.4, "disk": 0.1} for i in web],
            {"instance_id": db, "cpu": 0.5, "ram": 0.5 + step / 10, "disk": 0.2},
        )
        lab.advance(10)
    # another host's agent cannot read or report this host's loads
    other = api.register_host("lab-h02")
    denied = api.client.get(f"/v1/lab/hosts/{lab.agent.host_id}/loads", headers=other.headers)
    assert denied.status_code == 403

    lab.advance(20)  # past duration_s: the load ends, statistics are kept
    lab.loop.advance_runs()
    run = lab.run(run["id"])
    assert run["state"] == "cleaning"
    groups = {g["group"]: g for g in run["groups"]}
    assert groups["web"]["cpu"] == {"peak": 0.8, "p95": 0.8, "mean": 0.44, "samples": 10}
    assert groups["db"]["ram"]["peak"] == pytest.approx(0.9)
    assert groups["db"]["ram"]["mean"] == pytest.approx(0.7)
    assert groups["web"]["provision_s"]["peak"] == pytest.approx(7, abs=0.1)
    # samples after the load are ignored
    lab.usage({"instance_id": db, "cpu": 1.0, "ram": 1.0, "disk": 1.0})
    assert lab.run(run["id"])["samples"] == 15

    lab.agent.converge()  # the agent deletes the domains
    lab.loop.advance_runs()
    run = lab.run(run["id"])
    assert (run["state"], run["live"]) == ("completed", 0)
    assert _servers(lab) == []
    assert api.get("/v1/server-groups", expect=200).json() == []

    series = api.get(f"/v1/lab/runs/{run['id']}/series?group=db", token=lab.cht, expect=200)
    assert [p["ram"] for p in series.json()] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    measured = api.get(
        f"/v1/lab/trials/{lab.trial}/measurements", token=lab.moe_admin, expect=200
    ).json()
    assert [(g["name"], g["count"], g["flavor"]["vcpus"]) for g in measured["groups"]] == [
        ("web", 2, 1),
        ("db", 1, 2),
    ]
    assert measured["groups"][0]["cpu"]["p95"] == 0.8
    # the other vendor does not see the run at all
    error(api.get(f"/v1/lab/runs/{run['id']}", token=lab.fet), 404, "trial.not_found")
    actions = {e["action"] for e in api.audit()}
    assert "lab.run_create" in actions


def test_cancel_removes_everything_the_run_created(lab: Lab) -> None:
    api = lab.api
    run = api.post(
        f"/v1/lab/trials/{lab.trial}/runs", json=SCENARIO, token=lab.cht, expect=201
    ).json()
    lab.agent.converge()
    lab.loop.advance_runs()
    cancelled = api.post(
        f"/v1/lab/runs/{run['id']}/cancel", json={}, token=lab.cht, expect=200
    ).json()
    assert cancelled["state"] == "cancelling"
    assert {s["state"] for s in _servers(lab)} == {"DELETING"}
    lab.agent.converge()
    lab.loop.advance_runs()
    assert lab.run(run["id"])["state"] == "cancelled"
    assert _servers(lab) == []
    assert api.get("/v1/server-groups", expect=200).json() == []
    again = api.post(f"/v1/lab/runs/{run['id']}/cancel", json={}, token=lab.cht)
    error(again, 409, "lab_run.finished")
    # no completed run: nothing to size from
    none = api.get(f"/v1/lab/trials/{lab.trial}/measurements", token=lab.cht)
    assert "no completed scenario run" in error(none, 400)["message"]


def test_scenario_errors_name_the_field_and_limit(lab: Lab) -> None:
    api = lab.api
    url = f"/v1/lab/trials/{lab.trial}/runs"
    bad = api.post(url, json=SCENARIO | {"duration_s": -1}, token=lab.cht)
    assert "duration_s" in bad.text
    assert bad.status_code == 422
    many = SCENARIO | {"groups": [SCENARIO["groups"][1] | {"count": 101}]}
    assert "count" in api.post(url, json=many, token=lab.cht).text
    # more VMs than the trial's quota: the group fails with the quota's numbers
    big = SCENARIO | {
        "groups": [{"name": "x", "flavor": "m1.large", "image": "cirros", "count": 9}]
    }
    failed = api.post(url, json=big, token=lab.cht, expect=201).json()
    assert failed["state"] == "failed"
    assert failed["failures"]["x"]["code"] == "quota.exceeded"
    # another vendor's people: 404; the auditor-like read-only roles cannot start runs
    error(api.post(url, json=SCENARIO, token=lab.fet), 404, "trial.not_found")


def test_promote_moves_servers_with_quota(lab: Lab) -> None:
    api = lab.api
    for name in ("web-1", "db-1"):
        api.create_instance(name, project=lab.trial, flavor="m1.medium", token=lab.cht)
    lab.agent.converge()
    url = f"/v1/lab/trials/{lab.trial}/promote"
    # the vendor may not move its servers into a ministry's project
    error(api.post(url, json={"to": "dict-prod"}, token=lab.cht), 403)
    # a project of another ministry does not exist for this trial
    error(api.post(url, json={"to": "traffic"}, token=lab.operator), 404)
    error(api.post(url, json={"to": "naer"}, token=lab.operator), 400)
    # the target's quota is checked: nothing moves when it does not fit
    api.patch("/v1/quotas/dict-prod", json={"limits": {"vcpus": 2}}, expect=200)
    refused = api.post(url, json={"to": "dict-prod"}, token=lab.moe_admin)
    assert refused.status_code >= 400
    assert refused.json()["code"] == "quota.exceeded"
    assert "vcpus" in refused.text
    assert len(_servers(lab)) == 2
    api.patch("/v1/quotas/dict-prod", json={"limits": {"vcpus": 100}}, expect=200)
    done = api.post(url, json={"to": "dict-prod"}, token=lab.moe_admin, expect=200).json()
    assert len(done["instances"]) == 2
    assert _servers(lab) == []
    moved = [s for s in api.instances() if s["project"] == "dict-prod"]
    assert {s["name"] for s in moved} == {"web-1", "db-1"}
    assert {s["state"] for s in moved} == {"RUNNING"}
    report = api.get("/v1/quotas/dict-prod", expect=200).json()
    assert '"vcpus": 4' in json.dumps(report)  # 2 x 2 vCPU now count against the project
    trial_quota = json.dumps(api.get(f"/v1/quotas/{lab.trial}", expect=200).json())
    assert '"vcpus": 0' in trial_quota  # released from the trial's chain
    events = api.get(f"/v1/lab/trials/{lab.trial}/events", token=lab.moe_admin).json()
    assert events[-1]["kind"] == "promoted"
    assert "lab.promote" in {e["action"] for e in api.audit()}
