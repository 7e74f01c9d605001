"""Users and credentials: token hashes for users and host agents."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from controlplane.domain.auth import Principal, Role, User
from controlplane.domain.errors import AlreadyExists, Conflict, Unauthenticated
from controlplane.domain.tokens import hash_token, new_token
from controlplane.store.db import Database, in_subtree
from controlplane.store.org import ROOT_CODE, get_row
from controlplane.store.tables import HostRow, UserRow


def _model(row: UserRow) -> User:
    return User(
        name=row.name, role=Role(row.role), organisation=row.organisation, org_path=row.org_path
    )


class UserRepo:
    """Create users, issue their tokens, and turn a bearer token into a Principal."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def create(
        self, name: str, role: Role, organisation: str, token: str | None = None
    ) -> tuple[User, str]:
        """Create a user; returns it with its token (shown once, stored hashed)."""
        token = token or new_token("gcu")
        with self.db.transaction() as session:
            if session.get(UserRow, name) is not None:
                raise AlreadyExists("user", name)
            org = get_row(session, organisation)
            row = UserRow(
                name=name,
                role=role.value,
                organisation=org.code,
                org_path=org.path,
                token_hash=hash_token(token),
                created_at=self.clock(),
            )
            session.add(row)
            return _model(row), token

    def ensure_admin(self, token: str) -> None:
        """Create the built-in ``admin`` (platform-admin at the root) if it is missing.

        Replicas starting together may race here; the loser finds the admin created.
        """
        with self.db.transaction() as session:
            if session.get(UserRow, "admin") is not None:
                return
        with contextlib.suppress(AlreadyExists, Conflict):
            self.create("admin", Role.PLATFORM_ADMIN, ROOT_CODE, token)

    def list(self, scope: str) -> list[User]:
        """Users whose organisation lies in ``scope``."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(UserRow).where(in_subtree(UserRow.org_path, scope)).order_by(UserRow.name)
            )
            return [_model(r) for r in rows]

    def authenticate(self, token: str) -> Principal:
        """The user or host agent that ``token`` belongs to."""
        digest = hash_token(token)
        with self.db.transaction() as session:
            user = session.scalar(select(UserRow).where(UserRow.token_hash == digest))
            if user is not None:
                return Principal(name=user.name, role=Role(user.role), org_path=user.org_path)
            host = session.scalar(select(HostRow).where(HostRow.credential_hash == digest))
            if host is not None:
                return Principal(
                    name=f"agent:{host.name}", role=Role.AGENT, org_path=ROOT_CODE, host_id=host.id
                )
        raise Unauthenticated("the token is not valid; log in again with `govcloud login`")
