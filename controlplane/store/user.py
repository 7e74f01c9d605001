"""Users and credentials: token hashes for users and host agents, and the short-lived
cache of verified principals that keeps authentication off the database on hot paths."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from controlplane.domain.auth import Principal, Role, User
from controlplane.domain.errors import AlreadyExists, Conflict, NotFound, Unauthenticated
from controlplane.domain.tokens import hash_token, new_token
from controlplane.store.db import Database, in_subtree
from controlplane.store.org import ROOT_CODE, get_row
from controlplane.store.tables import HostRow, UserRow

#: Default lifetime of a cached principal (``Settings.auth_cache_ttl_s`` overrides it).
DEFAULT_TTL_S = 5.0
#: At most this many tokens are remembered (oldest dropped first).
MAX_ENTRIES = 4096


def _model(row: UserRow) -> User:
    return User(
        name=row.name, role=Role(row.role), organisation=row.organisation, org_path=row.org_path
    )


class PrincipalCache:
    """Verified principals by token digest, each kept for ``ttl_s`` seconds.

    Only successful look-ups are cached (an unknown token always reaches the database,
    so a freshly created user is never refused). A token revoked or a role changed
    through this replica's :class:`UserRepo` is dropped at once; another replica's
    change is seen at the latest ``ttl_s`` later. ``ttl_s`` = 0 turns caching off.
    """

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, now: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.now = now
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        """The cached principal of ``digest`` (a copy), or None if absent or expired."""
        if self.ttl_s <= 0:
            return None
        with self._lock:
            hit = self._entries.get(digest)
            if hit is None:
                return None
            expires, who = hit
            if expires <= self.now():
                del self._entries[digest]
                return None
        return who.model_copy()

    def put(self, digest: str, who: Principal) -> None:
        """Remember ``who`` for ``digest`` until the TTL runs out."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[digest] = (self.now() + self.ttl_s, who.model_copy())
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def drop(self, *, digest: str | None = None, name: str | None = None) -> None:
        """Forget one token (by digest) and/or every token of principal ``name``."""
        with self._lock:
            if digest is not None:
                self._entries.pop(digest, None)
            if name is not None:
                for key in [k for k, (_, who) in self._entries.items() if who.name == name]:
                    del self._entries[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


class UserRepo:
    """Create users, issue, rotate and revoke their tokens, change their roles, and turn a
    bearer token into a Principal (through :class:`PrincipalCache`)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self.cache = PrincipalCache()

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

    def rotate_token(self, name: str) -> str:
        """Revoke ``name``'s token and issue a new one (returned once, stored hashed).

        The old token stops working at once on this replica and within the cache TTL on
        the others.
        """
        token = new_token("gcu")
        with self.db.transaction() as session:
            row = session.get(UserRow, name, with_for_update=True)
            if row is None:
                raise NotFound("user", name)
            old, row.token_hash = row.token_hash, hash_token(token)
        self.cache.drop(digest=old, name=name)
        return token

    def set_role(self, name: str, role: Role) -> User:
        """Give ``name`` another role; cached principals of the user are dropped."""
        with self.db.transaction() as session:
            row = session.get(UserRow, name, with_for_update=True)
            if row is None:
                raise NotFound("user", name)
            row.role = role.value
            user = _model(row)
        self.cache.drop(name=name)
        return user

    def authenticate(self, token: str) -> Principal:
        """The user or host agent that ``token`` belongs to (cached for a short TTL)."""
        digest = hash_token(token)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        who = self._lookup(digest)
        self.cache.put(digest, who)
        return who

    def cached(self, token: str) -> Principal | None:
        """The principal of ``token`` if the cache holds it (no database access)."""
        return self.cache.get(hash_token(token))

    def _lookup(self, digest: str) -> Principal:
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
