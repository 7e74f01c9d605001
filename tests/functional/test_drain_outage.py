"""A host drain keeps running while its host is SUSPECT or DOWN (on SQLite and PostgreSQL,
with a fake clock): nothing can move off a silent host, so the drain waits and says why;
if evacuation empties the host meanwhile the drain finishes and the host comes back in the
drain's end state; a maintenance window that ends during the outage brings it back
active. (The drain that carries on once the host reports again is in test_liveness.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api_helper import Agent, Api
from tests.functional.test_evacuation import CAPACITY, restart_elsewhere
from tests.functional.test_liveness import host_state, running

pytestmark = pytest.mark.usefixtures("backend")


def silence(api: Api, seconds: float, *alive: Agent) -> None:
    """``seconds`` pass in which only ``alive`` heartbeat; then the liveness (with its
    evacuation), pending and drain loops run once each."""
    api.clock.advance(timedelta(seconds=seconds))
    for agent in alive:
        agent.heartbeat(*CAPACITY)
    api.app.state.liveness.run_once()
    api.place_pending()
    api.app.state.drains.run_once()


@pytest.mark.parametrize(
    ("start", "end_state"),
    [("drain", "draining"), ("maintenance", "maintenance")],
)
def test_a_drain_finished_by_evacuation_leaves_the_host_in_its_end_state(
    api: Api, start: str, end_state: str
) -> None:
    restart_elsewhere(api)
    h1 = api.register_host("tpe1-h01")
    instance_id = running(api, h1, "web-1")
    h2 = api.register_host("tpe1-h02")
    body = (
        {"until": (api.clock() + timedelta(hours=4)).isoformat()} if start == "maintenance" else {}
    )
    drain_id = api.post(f"/v1/hosts/tpe1-h01/{start}", json=body, expect=202).json()["id"]

    silence(api, 13, h2)  # DOWN: its instance is UNKNOWN and cannot move
    waiting = api.get(f"/v1/drains/{drain_id}", expect=200).json()
    assert (waiting["state"], waiting["remaining"]) == ("running", 1)
    assert "tpe1-h01 is down" in waiting["message"]

    silence(api, 33, h2)  # the lease ran out: evacuated to h02, so the drain is done
    assert api.instance(instance_id)["host_name"] == "tpe1-h02"
    done = api.get(f"/v1/drains/{drain_id}", expect=200).json()
    assert done["state"] == "done"
    assert done["message"] == f"empty; host is down and becomes {end_state} when it reports again"
    assert host_state(api, h1) == "down"

    h1.heartbeat(*CAPACITY)
    assert host_state(api, h1) == end_state
    assert h1.assignments()["assignments"] == []


def test_maintenance_that_ends_during_the_outage_brings_the_host_back_active(api: Api) -> None:
    h1 = api.register_host("tpe1-h01")
    running(api, h1, "web-1")
    h2 = api.register_host("tpe1-h02")
    until = (api.clock() + timedelta(minutes=5)).isoformat()
    drain_id = api.post("/v1/hosts/tpe1-h01/maintenance", json={"until": until}, expect=202).json()[
        "id"
    ]

    silence(api, 13, h2)
    assert api.get(f"/v1/drains/{drain_id}", expect=200).json()["state"] == "running"
    silence(api, 300, h2)  # the window ends while the host is still down
    ended = api.get(f"/v1/drains/{drain_id}", expect=200).json()
    assert ended["state"] == "ended"
    assert host_state(api, h1) == "down"

    h1.heartbeat(*CAPACITY)
    assert host_state(api, h1) == "active"  # not left draining with no drain
