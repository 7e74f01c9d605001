"""``/v1/datacentres``."""

from controlplane.api.routes.catalog import catalog_router
from controlplane.domain.datacentre import DataCentre
from controlplane.schemas.catalog import DataCentreCreate, DataCentreUpdate

router = catalog_router(
    kind="dc",
    path="datacentres",
    repo="datacentres",
    model=DataCentre,
    create=DataCentreCreate,
    update=DataCentreUpdate,
)
