"""Router factory for catalogue resources (data centres, flavors, images): everyone may
read them, only platform-admins change them."""

from typing import Any  # no `from __future__ import annotations`: FastAPI reads body types

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from controlplane.api.context import StoreDep, UserDep, audit_target
from controlplane.api.routes.agent import forget_fence_leases
from controlplane.domain.auth import require_platform_admin
from controlplane.store import Store
from controlplane.store.catalog import CatalogRepo


def catalog_router(
    *,
    kind: str,
    path: str,
    repo: str,
    model: type[BaseModel],
    create: type[BaseModel],
    update: type[BaseModel] | None = None,
) -> APIRouter:
    """CRUD routes for ``store.<repo>`` under ``/<path>``, named ``<kind>.<verb>``."""
    router = APIRouter(prefix=f"/{path}", tags=[path])

    def repo_of(store: Store) -> CatalogRepo[Any, Any]:
        found: CatalogRepo[Any, Any] = getattr(store, repo)
        return found

    @router.get("", name=f"{kind}.list", response_model=list[model])  # type: ignore[valid-type]
    def list_items(store: StoreDep, _who: UserDep) -> list[Any]:
        return repo_of(store).list()

    @router.get("/{ident}", name=f"{kind}.show", response_model=model)
    def show(ident: str, store: StoreDep, _who: UserDep) -> Any:
        return repo_of(store).get(ident)

    @router.post("", name=f"{kind}.create", status_code=201, response_model=model)
    def create_item(
        body: create,  # type: ignore[valid-type]
        request: Request,
        store: StoreDep,
        who: UserDep,
    ) -> Any:
        require_platform_admin(who)
        ident = getattr(body, repo_of(store).key)
        audit_target(request, kind, ident)
        return repo_of(store).create(model.model_validate(body.model_dump()))  # type: ignore[attr-defined]

    if update is not None:

        @router.patch("/{ident}", name=f"{kind}.update", response_model=model)
        def update_item(
            ident: str,
            body: update,  # type: ignore[valid-type]
            request: Request,
            store: StoreDep,
            who: UserDep,
        ) -> Any:
            require_platform_admin(who)
            changed = repo_of(store).update(ident, body.model_dump(exclude_none=True))  # type: ignore[attr-defined]
            request.app.state.pending.poke()
            if kind == "dc":  # its evacuation policy sets its agents' fencing lease
                forget_fence_leases(request)
            return changed

    @router.delete("/{ident}", name=f"{kind}.delete", status_code=204)
    def delete_item(ident: str, store: StoreDep, who: UserDep) -> Response:
        require_platform_admin(who)
        repo_of(store).delete(ident)
        return Response(status_code=204)

    return router
