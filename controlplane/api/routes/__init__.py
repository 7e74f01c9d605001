"""The routing table: one module per resource; grep here to find any endpoint."""

from fastapi import APIRouter

from controlplane.api.routes import (
    agent,
    audit,
    datacentre,
    flavor,
    host,
    image,
    instance,
    maintenance,
    org,
    quota,
    sla,
    usage,
    user,
)

#: The agents' routes first: a 300-host fleet sends ~100 of their requests a second, and
#: routes are matched in order.
ROUTERS: tuple[APIRouter, ...] = (
    agent.router,
    org.router,
    user.router,
    datacentre.router,
    host.router,
    flavor.router,
    image.router,
    instance.router,
    audit.router,
    quota.router,
    usage.router,
    maintenance.router,
    sla.router,
)
