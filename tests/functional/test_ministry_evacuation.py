"""A ministry's evacuation policy overrides its data centres' (or inherits), through the
API and the CLI, on SQLite and PostgreSQL with a fake clock.

``PATCH /v1/orgs/{ministry}`` ``{"evacuation_policy": "none" | "restart-elsewhere" |
"inherit"}`` is for platform admins; evacuation applies the instance's ministry's
override when it has one, else the data centre's policy, and the ``evacuate`` action
says which applied and where it came from.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api_helper import Agent, Api, error
from tests.functional.cli_helpers import CliHarness

CAPACITY = (16, 32768, 500)


def set_ministry(api: Api, code: str, policy: str, **kwargs: Any) -> dict[str, Any]:
    body: dict[str, Any] = api.patch(
        f"/v1/orgs/{code}", json={"evacuation_policy": policy}, **kwargs
    ).json()
    return body


def outage(api: Api, survivor: Agent) -> Any:
    """The first host goes silent: DOWN after 13 s, due for evacuation after 46 s."""
    api.clock.advance(timedelta(seconds=13))
    survivor.heartbeat(*CAPACITY)
    api.app.state.liveness.run_once()
    api.clock.advance(timedelta(seconds=33))
    survivor.heartbeat(*CAPACITY)
    return api.app.state.liveness.run_once()


def two_ministries_on_one_host(api: Api) -> tuple[Agent, Agent, str, str]:
    """moi's and motc's instances on h1, an empty h2 to evacuate to."""
    old = api.register_host("tpe1-h01")
    moi = api.create_instance("fire-1", project="disaster")["id"]
    motc = api.create_instance("road-1", project="traffic")["id"]
    old.converge()
    new = api.register_host("tpe1-h02")
    return old, new, moi, motc


def evacuate_message(api: Api, instance_id: str) -> str:
    actions = api.get(f"/v1/instances/{instance_id}/actions", expect=200).json()
    [evacuate] = [a for a in actions if a["action"] == "evacuate"]
    message: str = evacuate["message"]
    return message


def test_a_ministry_override_restarts_its_instances_where_the_dc_says_none(api: Api) -> None:
    _old, new, moi, motc = two_ministries_on_one_host(api)
    assert new.heartbeat(*CAPACITY).json()["fence_after_s"] == 0.0
    shown = set_ministry(api, "moi", "restart-elsewhere", expect=200)
    assert shown["evacuation_policy"] == "restart-elsewhere"
    # Every host may run moi's instances now, so every agent gets the fencing lease.
    assert new.heartbeat(*CAPACITY).json()["fence_after_s"] == 30.0

    report = outage(api, new)

    assert report.evacuation.requeued == {"tpe1-h01": [moi]}
    assert report.evacuation.kept == [motc]
    assert api.instance(motc)["state"] == "UNKNOWN"  # motc inherits tpe-1's "none"
    assert "under ministry moi's restart-elsewhere policy" in evacuate_message(api, moi)
    assert api.place_pending() == 1
    assert api.instance(moi)["host_name"] == "tpe1-h02"


def test_a_ministry_override_none_keeps_its_instances_in_a_restart_dc(api: Api) -> None:
    api.patch("/v1/datacentres/tpe-1", json={"evacuation_policy": "restart-elsewhere"}, expect=200)
    old, new, moi, motc = two_ministries_on_one_host(api)
    set_ministry(api, "moi", "none", expect=200)

    report = outage(api, new)

    assert report.evacuation.requeued == {"tpe1-h01": [motc]}
    assert api.instance(moi)["state"] == "UNKNOWN"
    assert "under data centre tpe-1's restart-elsewhere policy" in evacuate_message(api, motc)
    # The host returns: moi's instance is still its own, motc's is not.
    old.heartbeat(*CAPACITY)
    assert [a["instance_id"] for a in old.assignments()["assignments"]] == [moi]


def test_inherit_clears_the_override(api: Api) -> None:
    api.register_host("tpe1-h01")
    set_ministry(api, "motc", "restart-elsewhere", expect=200)
    assert api.get("/v1/orgs/motc", expect=200).json()["evacuation_policy"] == "restart-elsewhere"
    cleared = set_ministry(api, "motc", "inherit", expect=200)
    assert cleared["evacuation_policy"] == "inherit"
    assert api.get("/v1/orgs/moi", expect=200).json()["evacuation_policy"] == "inherit"
    agent = api.register_host("tpe1-h02")
    assert agent.heartbeat(*CAPACITY).json()["fence_after_s"] == 0.0


def test_only_platform_admins_set_it_only_on_ministries_and_it_is_audited(api: Api) -> None:
    err = error(api.patch("/v1/orgs/nfa", json={"evacuation_policy": "none"}), 400)
    assert err["details"]["field"] == "evacuation_policy"
    assert "only a ministry" in err["message"]
    err = error(api.patch("/v1/orgs/moi", json={"evacuation_policy": "sometimes"}), 422)
    assert "evacuation_policy" in str(err)
    error(api.patch("/v1/orgs/nope", json={"evacuation_policy": "none"}), 404)

    moi_admin = api.create_user("moi-admin", "ministry-admin", "moi")
    error(set_ministry_raw(api, "moi", moi_admin), 403)
    error(set_ministry_raw(api, "motc", moi_admin), 404)  # another ministry: not there
    assert api.get("/v1/orgs/moi", expect=200).json()["evacuation_policy"] == "inherit"

    set_ministry(api, "moi", "none", expect=200)
    events = [e for e in api.audit() if e["action"] == "org.update"]
    assert {(e["target_id"], e["outcome"], e["status_code"]) for e in events} >= {
        ("moi", "success", 200),
        ("moi", "failure", 403),
        ("nfa", "failure", 400),
    }


def set_ministry_raw(api: Api, code: str, token: str) -> Any:
    return api.patch(f"/v1/orgs/{code}", json={"evacuation_policy": "none"}, token=token)


def test_cli_org_update_and_show(cli: CliHarness) -> None:
    result = cli.run("org", "update", "moi", "--evacuation", "restart-elsewhere")
    assert "evacuation policy restart-elsewhere" in result.stderr
    shown = cli.run("org", "show", "moi").stdout
    assert "evacuation_policy" in shown
    assert "restart-elsewhere" in shown
    cli.run("org", "update", "moi", "--evacuation", "inherit")
    assert "inherit" in cli.run("org", "show", "moi").stdout
    failed = cli.run("org", "update", "nfa", "--evacuation", "none", code=2)
    assert "only a ministry" in failed.stderr
    cli.run("org", "update", "moi", code=2)  # nothing to change
