"""Revocations on one replica take effect at once.

A token look-up racing a revocation on the same replica (``UserRepo.authenticate`` against
``rotate_token`` / ``set_role`` / ``delete``): the principal read before the revocation
committed is never cached after it, so the revoked token, the deleted user or the old role
stops working at once. A deleted built-in ``admin`` is not created again at start.

The interleaving is forced by wrapping ``UserRepo._lookup`` so the revocation commits
between the look-up's read and its cache write (threads cannot be scheduled that
precisely); the store, the database and the cache are real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controlplane.domain.auth import Principal, Role
from controlplane.domain.errors import Unauthenticated
from controlplane.store import Store, open_store
from controlplane.store.user import anyone

TOKEN = "gcu_token_of_chen_for_the_race_0123456789"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/auth.db")
    s.orgs.ensure_root()
    s.users.ensure_admin("gcu_admin_token_for_the_race_0123456789")
    s.users.create("chen", Role.PLATFORM_ADMIN, "gov", TOKEN)
    yield s
    s.close()


def _race(store: Store, revoke: Callable[[], object]) -> Principal:
    """Authenticate TOKEN while ``revoke`` commits between the read and the cache write."""
    real = store.users._lookup

    def racing(digest: str) -> Principal:
        who = real(digest)
        revoke()
        return who

    store.users._lookup = racing  # type: ignore[method-assign]
    try:
        return store.users.authenticate(TOKEN)  # answered from the read: it began before
    finally:
        store.users._lookup = real  # type: ignore[method-assign]


def test_rotated_token_is_refused_at_once(store: Store) -> None:
    _race(store, lambda: store.users.rotate_token("chen", authorize=anyone))
    with pytest.raises(Unauthenticated):
        store.users.authenticate(TOKEN)


def test_deleted_user_is_refused_at_once(store: Store) -> None:
    _race(store, lambda: store.users.delete("chen", authorize=anyone))
    with pytest.raises(Unauthenticated):
        store.users.authenticate(TOKEN)


def test_changed_role_applies_at_once(store: Store) -> None:
    _race(store, lambda: store.users.set_role("chen", Role.AUDITOR, authorize=anyone))
    assert store.users.authenticate(TOKEN).role is Role.AUDITOR


def test_a_deleted_admin_is_not_created_again_at_start(store: Store) -> None:
    admin_token = "gcu_admin_token_for_the_race_0123456789"
    assert store.users.authenticate(admin_token).name == "admin"
    store.users.delete("admin", authorize=anyone)  # chen is platform-admin too
    store.users.ensure_admin(admin_token)  # what every start does
    with pytest.raises(Unauthenticated):
        store.users.authenticate(admin_token)
