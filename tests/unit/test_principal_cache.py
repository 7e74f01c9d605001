"""The principal cache: entries expire after the TTL, revocations drop them, the size is
bounded, a zero TTL caches nothing, and callers get copies they cannot corrupt."""

from __future__ import annotations

from controlplane.domain.auth import Principal, Role
from controlplane.store.user import MAX_ENTRIES, PrincipalCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def member(name: str = "chen") -> Principal:
    return Principal(name=name, role=Role.MEMBER, org_path="gov/moi/nfa")


def test_an_entry_lives_exactly_the_ttl() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, clock)
    cache.put("d1", member())
    clock.now = 4.999
    assert cache.get("d1") == member()
    clock.now = 5.0
    assert cache.get("d1") is None
    clock.now = 0.0
    assert cache.get("d1") is None  # expired entries are gone, not merely hidden


def test_drop_by_digest_and_by_name() -> None:
    cache = PrincipalCache(60.0, Clock())
    cache.put("a", member("chen"))
    cache.put("b", member("chen"))  # a second token of the same user
    cache.put("c", member("lin"))
    cache.drop(digest="c")
    assert cache.get("c") is None
    cache.drop(name="chen")
    assert cache.get("a") is None
    assert cache.get("b") is None


def test_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(0.0, Clock())
    cache.put("a", member())
    assert cache.get("a") is None


def test_size_is_bounded_oldest_first() -> None:
    cache = PrincipalCache(60.0, Clock())
    for i in range(MAX_ENTRIES + 10):
        cache.put(f"d{i}", member(f"u{i}"))
    assert cache.get("d0") is None
    assert cache.get("d9") is None
    assert cache.get("d10") is not None
    assert cache.get(f"d{MAX_ENTRIES + 9}") is not None


def test_callers_get_copies() -> None:
    cache = PrincipalCache(60.0, Clock())
    who = member()
    cache.put("a", who)
    who.role = Role.PLATFORM_ADMIN  # the caller's object changes after put
    got = cache.get("a")
    assert got is not None
    assert got.role is Role.MEMBER
    got.org_path = "gov"
    again = cache.get("a")
    assert again is not None
    assert again.org_path == "gov/moi/nfa"


def test_a_look_up_that_read_before_a_drop_caches_nothing() -> None:
    cache = PrincipalCache(5.0, Clock())
    started = cache.generation  # a look-up reads the database...
    cache.drop(name="chen")  # ...while a revocation commits and drops the user
    cache.put("d1", member(), started)  # the look-up's stale principal is not kept
    assert cache.get("d1") is None
    cache.put("d1", member(), cache.generation)  # a look-up after the drop is kept
    assert cache.get("d1") == member()
