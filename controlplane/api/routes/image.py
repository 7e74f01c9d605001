"""``/v1/images``."""

from controlplane.api.routes.catalog import catalog_router
from controlplane.domain.image import Image
from controlplane.schemas.catalog import ImageCreate

router = catalog_router(
    kind="image",
    path="images",
    repo="images",
    model=Image,
    create=ImageCreate,
)
