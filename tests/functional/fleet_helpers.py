"""Agent stand-ins that understand migration orders, for the fleet (migration/drain) tests,
and host registration straight through the store."""

from __future__ import annotations

from typing import Any

from agents.protocol.v1 import RegisterRequest
from controlplane.domain.resources import Resources
from controlplane.store import Store
from tests.api_helper import Agent, Api

OBSERVED = {"running": "running", "stopped": "stopped", "deleted": "absent"}


def migration_agent_pass(agent: Agent, *, fail_source: str | None = None) -> list[dict[str, Any]]:
    """One pass of a well-behaved agent on the libvirt test driver.

    Source side of a migration: pause (live) or power off (cold) and report ``ready``
    (or ``failed`` with ``fail_source`` as the message). Target side: report nothing until
    the handoff (``create``), then the desired state. Anything else: converge as usual.
    """
    assigned: list[dict[str, Any]] = agent.assignments()["assignments"]
    statuses = []
    for a in assigned:
        order = a.get("migration")
        status: dict[str, Any] = {"instance_id": a["instance_id"], "reboot_seq": a["reboot_seq"]}
        if order and order["role"] == "source":
            if fail_source is not None:
                status |= {"state": "running", "migration": "failed", "message": fail_source}
            else:
                state = "running" if order["live"] and a["desired"] == "running" else "stopped"
                status |= {"state": state, "migration": "ready"}
        elif order and order["role"] == "target" and not a["create"]:
            status |= {"state": "absent"}
        else:
            status |= {"state": OBSERVED[a["desired"]]}
        statuses.append(status)
    if statuses:
        agent.report(*statuses)
    return assigned


def settle(api: Api, agents: list[Agent], rounds: int = 3) -> None:
    """Run agent passes (and the drain loop) until the moves in flight are done."""
    for _ in range(rounds):
        for agent in agents:
            migration_agent_pass(agent)
        api.app.state.drains.run_once()


def register_host(
    store: Store, name: str, capacity: Resources, traits: list[str] | None = None
) -> str:
    """Register host ``name`` in data centre tpe-1 straight through the store, as its agent
    would (one bootstrap token, then registration); returns its id."""
    token, _ = store.hosts.issue_bootstrap_token("tpe-1", "test")
    host, _credential = store.hosts.register(
        RegisterRequest(
            bootstrap_token=token,
            name=name,
            capacity=capacity,
            libvirt_uri="test:///default",
            agent_version="test",
            traits=traits or [],
        )
    )
    return host.id
