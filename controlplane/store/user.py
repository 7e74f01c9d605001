"""Users and credentials: user accounts (create, rotate a token, change a role, delete,
with the caller judged against the locked row and the last platform-admin always kept),
token hashes for users and host agents, and the short-lived cache of verified principals
that keeps authentication off the database on hot paths."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


#: Judges the caller against the locked user row (raises to refuse).
Authorize = Callable[[User], None]


def anyone(user: User) -> None:
    """No check: for callers that decided already (tests, scripts). Say so explicitly:
    the changing methods have no default, so a forgotten check cannot pass silently."""


def _keep_a_platform_admin(
    session: Session, row: UserRow, *, field: str, value: str, change: str
) -> None:
    """Refuse to take the platform-admin role from the last user who has it (the rows
    are locked by :meth:`UserRepo._lock_for_change`)."""
    if row.role != Role.PLATFORM_ADMIN.value:
        return
    admins = session.scalar(select(func.count()).where(UserRow.role == Role.PLATFORM_ADMIN.value))
    if (admins or 0) <= 1:
        raise Conflict(
            f"{field}: {row.name!r} is the last platform-admin and cannot {change} (at "
            "least 1 platform-admin must remain); make another user platform-admin first",
            code="user.last_platform_admin",
            field=field,
            limit="at least 1 platform-admin",
            value=value,
        )


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

    Every drop moves :attr:`generation`: a look-up that read the database before a drop
    and would cache its (now stale) principal after it passes the generation it started
    at to :meth:`put`, which then caches nothing.
    """

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, now: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.now = now
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Moves at every drop or clear; read it before a look-up, give it to :meth:`put`."""
        return self._generation

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

    def put(self, digest: str, who: Principal, generation: int | None = None) -> None:
        """Remember ``who`` for ``digest`` until the TTL runs out, unless something was
        dropped since ``generation`` (then ``who`` may be what was revoked)."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            self._entries[digest] = (self.now() + self.ttl_s, who.model_copy())
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def drop(self, *, digest: str | None = None, name: str | None = None) -> None:
        """Forget one token (by digest) and/or every token of principal ``name``."""
        with self._lock:
            self._generation += 1
            if digest is not None:
                self._entries.pop(digest, None)
            if name is not None:
                for key in [k for k, (_, who) in self._entries.items() if who.name == name]:
                    del self._entries[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._generation += 1
            self._entries.clear()


class UserRepo:
    """Create, list and delete users, rotate their tokens, change their roles, and turn a
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
        """Create the built-in ``admin`` (platform-admin at the root) in a database that
        has no platform-admin yet. Once ``admin`` has been deleted (possible only while
        another platform-admin exists) it is not created again, so deleting it revokes
        ``GOVCLOUD_ADMIN_TOKEN`` for good.

        Replicas starting together may race here; the loser finds the admin created.
        """
        with self.db.transaction() as session:
            if session.get(UserRow, "admin") is not None:
                return
            admins = session.scalar(
                select(func.count()).where(UserRow.role == Role.PLATFORM_ADMIN.value)
            )
            if admins:
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

    def rotate_token(self, name: str, *, authorize: Authorize) -> str:
        """Revoke ``name``'s token and issue a new one (returned once, stored hashed);
        ``authorize`` judges the caller against the locked user first.

        The old token stops working at once on this replica and within the cache TTL on
        the others.
        """
        token = new_token("gcu")
        with self.db.transaction() as session:
            row = session.get(UserRow, name, with_for_update=True)
            if row is None:
                raise NotFound("user", name)
            authorize(_model(row))
            old, row.token_hash = row.token_hash, hash_token(token)
        self.cache.drop(digest=old, name=name)
        return token

    def set_role(self, name: str, role: Role, *, authorize: Authorize) -> User:
        """Give ``name`` another role (never taking the last platform-admin's);
        ``authorize`` judges the caller against the locked user first. Cached principals
        of the user are dropped."""
        with self.db.transaction() as session:
            row = self._lock_for_change(session, name, authorize)
            if role is not Role.PLATFORM_ADMIN:
                _keep_a_platform_admin(
                    session, row, field="role", value=role.value, change=f"become {role.value}"
                )
            row.role = role.value
            user = _model(row)
        self.cache.drop(name=name)
        return user

    def delete(self, name: str, *, authorize: Authorize) -> None:
        """Delete ``name`` (never the last platform-admin); its token stops working at
        once on this replica and within the cache TTL on the others. Audit events, and
        the ``created_by`` of what the user made, keep the name as text."""
        with self.db.transaction() as session:
            row = self._lock_for_change(session, name, authorize)
            _keep_a_platform_admin(session, row, field="name", value=name, change="be deleted")
            digest = row.token_hash
            session.delete(row)
        self.cache.drop(digest=digest, name=name)

    @staticmethod
    def _lock_for_change(session: Session, name: str, authorize: Authorize) -> UserRow:
        """Lock every platform-admin (by name), then ``name``: one lock order, so two
        changes can never each leave the other the last platform-admin."""
        session.scalars(
            select(UserRow.name)
            .where(UserRow.role == Role.PLATFORM_ADMIN.value)
            .order_by(UserRow.name)
            .with_for_update()
        ).all()
        row = session.get(UserRow, name, with_for_update=True)
        if row is None:
            raise NotFound("user", name)
        authorize(_model(row))
        return row

    def authenticate(self, token: str) -> Principal:
        """The user or host agent that ``token`` belongs to (cached for a short TTL)."""
        digest = hash_token(token)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        generation = self.cache.generation  # before the read: see PrincipalCache
        who = self._lookup(digest)
        self.cache.put(digest, who, generation)
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
