"""Keyed CRUD for catalogue resources whose rows mirror their models field by field
(data centres, flavors, images)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.domain.errors import AlreadyExists, InvalidState, NotFound
from controlplane.store.db import Database
from controlplane.store.tables import Base

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Base)


class CatalogRepo(Generic[M, R]):
    """Create, get, list, update and delete one kind of catalogue entry by its key."""

    def __init__(
        self,
        db: Database,
        kind: str,
        model: type[M],
        row: type[R],
        key: str,
        in_use: Any = None,
    ) -> None:
        self.db = db
        self.kind = kind
        self.model = model
        self.row = row
        self.key = key
        #: A SQL count query with one bind parameter ``ident``: the live references.
        self.in_use = in_use

    def _to_model(self, row: R) -> M:
        return self.model.model_validate(
            {name: getattr(row, name) for name in self.model.model_fields}
        )

    def _get_row(self, session: Session, ident: str) -> R:
        row = session.get(self.row, ident)
        if row is None:
            raise NotFound(self.kind, ident)
        return row

    def create(self, item: M) -> M:
        """Insert ``item``; AlreadyExists if its key is taken."""
        ident = getattr(item, self.key)
        with self.db.transaction() as session:
            if session.get(self.row, ident) is not None:
                raise AlreadyExists(self.kind, ident)
            session.add(self.row(**item.model_dump(mode="json")))
        return item

    def get(self, ident: str) -> M:
        """The entry called ``ident``, or NotFound."""
        with self.db.transaction() as session:
            return self._to_model(self._get_row(session, ident))

    def list(self) -> list[M]:
        """Every entry, ordered by key."""
        with self.db.transaction() as session:
            rows = session.scalars(select(self.row).order_by(getattr(self.row, self.key)))
            return [self._to_model(r) for r in rows]

    def update(self, ident: str, changes: dict[str, Any]) -> M:
        """Apply validated field changes to one entry."""
        with self.db.transaction() as session:
            row = self._get_row(session, ident)
            merged = self._to_model(row).model_copy(update=changes)
            checked = self.model.model_validate(merged.model_dump())
            for name, value in checked.model_dump(mode="json").items():
                setattr(row, name, value)
            return checked

    def delete(self, ident: str) -> None:
        """Delete one entry; refused while live resources still refer to it."""
        with self.db.transaction() as session:
            row = self._get_row(session, ident)
            if self.in_use is not None:
                users = session.scalar(self.in_use, {"ident": ident})
                if users:
                    raise InvalidState(
                        f"{self.kind} {ident!r} is still used by {users} resource(s); "
                        "remove those first",
                        code=f"{self.kind}.in_use",
                        in_use=users,
                    )
            session.delete(row)
