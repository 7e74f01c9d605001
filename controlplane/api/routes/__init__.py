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

ROUTERS: tuple[APIRouter, ...] = (
    org.router,
    user.router,
    datacentre.router,
    host.router,
    flavor.router,
    image.router,
    instance.router,
    agent.router,
    audit.router,
    quota.router,
    usage.router,
    maintenance.router,
    sla.router,
)
