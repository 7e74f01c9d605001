"""``/v1/hosts``: the fleet, for operators (and root auditors, read-only)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.domain.auth import require_infra_reader, require_platform_admin
from controlplane.domain.consolidation import power_update
from controlplane.domain.host import Host
from controlplane.schemas.host import BootstrapToken, BootstrapTokenCreate, HostUpdate

router = APIRouter(prefix="/hosts", tags=["hosts"])


@router.get("", name="host.list", response_model=list[Host])
def list_hosts(
    store: StoreDep, who: UserDep, datacentre: str | None = None, state: str | None = None
) -> list[Host]:
    """Hosts, optionally in one data centre or state."""
    require_infra_reader(who)
    return store.hosts.list(datacentre, state)


@router.post(
    "/bootstrap-tokens", name="host.bootstrap_token", status_code=201, response_model=BootstrapToken
)
def issue_token(
    body: BootstrapTokenCreate, request: Request, store: StoreDep, who: UserDep
) -> BootstrapToken:
    """A one-time token for enrolling one host into a data centre."""
    require_platform_admin(who)
    audit_target(request, "dc", body.datacentre)
    token, expires = store.hosts.issue_bootstrap_token(
        body.datacentre, who.name, timedelta(hours=body.ttl_hours)
    )
    return BootstrapToken(token=token, datacentre=body.datacentre, expires_at=expires)


@router.get("/{host}", name="host.show", response_model=Host)
def show_host(host: str, store: StoreDep, who: UserDep) -> Host:
    """One host, by id or name."""
    require_infra_reader(who)
    return store.hosts.get(host)


@router.patch("/{host}", name="host.update", response_model=Host)
def update_host(
    host: str, body: HostUpdate, request: Request, store: StoreDep, who: UserDep
) -> Host:
    """Change state, ratios, reservations or traits."""
    require_platform_admin(who)
    updated = store.hosts.update(
        host,
        state=body.state,
        ratios=body.ratios,
        reserved=body.reserved,
        traits=body.traits,
        power=None
        if body.idle_watts is None and body.peak_watts is None
        else power_update(store.hosts.get(host), body.idle_watts, body.peak_watts),
    )
    request.app.state.pending.poke()
    return updated
