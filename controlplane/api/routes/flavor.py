"""``/v1/flavors``."""

from controlplane.api.routes.catalog import catalog_router
from controlplane.domain.flavor import Flavor
from controlplane.schemas.catalog import FlavorCreate

router = catalog_router(
    kind="flavor",
    path="flavors",
    repo="flavors",
    model=Flavor,
    create=FlavorCreate,
)
