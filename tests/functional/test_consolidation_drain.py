"""A host that an open consolidation is emptying is not drained (nor put into maintenance)
as well: the API refuses with a Conflict naming the consolidation and what to do, on
SQLite and PostgreSQL, through the API and the CLI; once the consolidation is cancelled
the drain is accepted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from controlplane.cli.errors import ExitCode
from tests.api_helper import Api, error
from tests.functional.cli_helpers import CliHarness
from tests.functional.test_consolidation import RUN, fleet, hosts


def test_a_host_being_consolidated_is_not_drained_until_the_consolidation_ends(
    api: Api, tmp_path: Path
) -> None:
    fleet(api, hosts=4, servers=4)
    started = api.post(RUN, json={"reserve": 0}, expect=202).json()
    host = started["plan"]["freed"][0]
    windows = api.get("/v1/maintenance-windows", expect=200).json()

    body = error(api.post(f"/v1/hosts/{host}/drain", json={}), 409, "host.consolidating")
    assert body["details"] == {
        "host": host,
        "consolidation": started["id"],
        "datacentre": "tpe-1",
        "state": "running",
    }
    assert f"consolidation {started['id']}" in body["message"]
    assert "`govcloud dc consolidate tpe-1 --show`" in body["message"]
    assert "`govcloud dc consolidate tpe-1 --cancel`" in body["message"]
    until = (api.clock() + timedelta(hours=2)).isoformat()
    error(api.post(f"/v1/hosts/{host}/maintenance", json={"until": until}), 409)
    # The refused maintenance leaves no window behind.
    assert api.get("/v1/maintenance-windows", expect=200).json() == windows
    assert api.get(f"/v1/drains?subject={host}", expect=200).json() == []

    api.post(f"{RUN}/pause", expect=200)
    paused = error(api.post(f"/v1/hosts/{host}/drain", json={}), 409, "host.consolidating")
    assert paused["details"]["state"] == "paused"
    cli = CliHarness(api, tmp_path / "home")
    refused = cli.run("host", "drain", host, code=ExitCode.API_ERROR)
    assert f"is being emptied by consolidation {started['id']}" in refused.stderr

    api.post(f"{RUN}/cancel", expect=200)
    assert hosts(api)[host]["state"] == "active"
    drained = api.post(f"/v1/hosts/{host}/drain", json={}, expect=202).json()
    assert drained["state"] == "running"
