"""The scheduler's reusable fleet snapshot (``controlplane/store/fleet_index.py``).

The fleet epoch is bumped by database triggers (migration 0012) exactly when room may have
appeared or eligibility changed; a snapshot that is stale in any direction costs at most a
re-selection, never an overcommit, a broken trait rule or a request wrongly left PENDING.
Run on SQLite and PostgreSQL, with two Stores over one database standing in for two
control-plane replicas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from agents.protocol.v1 import Heartbeat
from controlplane.domain.datacentre import DataCentre, DataCentreState
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import Resources
from controlplane.store import Store, open_store
from controlplane.store.fleet_index import read_epoch
from controlplane.store.instance import Hints
from controlplane.store.placement import release
from tests.functional.fleet_helpers import register_host

SMALL = Flavor(name="s1", vcpus=1, ram_mib=1024, disk_gib=10)
#: Room for exactly two s1 instances (RAM binds; 512 MiB is reserved by default).
HOST = Resources(vcpus=16, ram_mib=512 + 2 * 1024, disk_gib=1000)


def _register(store: Store, name: str, traits: list[str] | None = None) -> str:
    return register_host(store, name, HOST, traits)


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two replicas over one seeded database with hosts h1, h2 (h2 has trait ``gpu``)."""
    first = open_store(db_url, migrate=False)
    second = open_store(db_url, migrate=False)
    first.datacentres.create(DataCentre(code="tpe-1", name="Taipei 1"))
    first.flavors.create(SMALL)
    first.images.create(Image(name="cirros", min_disk_gib=1))
    first.orgs.create("moe", "Education", "gov")
    first.orgs.create("moe-it", "IT", "moe")
    first.orgs.create("dict", "Dictionary", "moe-it")
    _register(first, "h1")
    _register(first, "h2", ["gpu"])
    yield first, second
    second.close()
    first.close()


def _create(store: Store, name: str, hints: Hints | None = None) -> tuple[str, str | None]:
    instance = store.instances.create(
        name=name,
        project="dict",
        flavor="s1",
        image="cirros",
        datacentre=None,
        actor="test",
        request_id=f"req-{name}",
        hints=hints,
    )
    return instance.state.value, instance.host_name


def _epoch(store: Store) -> int:
    with store.db.transaction() as session:
        return read_epoch(session)


def _used_ram(store: Store) -> dict[str, tuple[int, int]]:
    return {h.name: (h.used.ram_mib, h.usable.ram_mib) for h in store.hosts.list()}


def test_epoch_moves_only_when_room_or_eligibility_changes(stores: tuple[Store, Store]) -> None:
    store, _ = stores
    before = _epoch(store)
    _register(store, "h3")
    assert _epoch(store) > before, "a new host"

    before = _epoch(store)
    state, host = _create(store, "a")
    assert state == InstanceState.SCHEDULED.value
    h = store.hosts.get(host or "")
    store.hosts.heartbeat(h.id, Heartbeat(agent_version="test", capacity=HOST))
    assert _epoch(store) == before, "claims and plain heartbeats leave the epoch alone"

    store.hosts.update(h.id, traits=["ssd"])
    assert _epoch(store) > before, "traits changed"

    before = _epoch(store)
    with store.db.transaction() as session:
        release(session, h.id, Resources(vcpus=1, ram_mib=1024, disk_gib=10))
    assert _epoch(store) > before, "usage went down: room appeared"

    before = _epoch(store)
    store.datacentres.update("tpe-1", {"state": DataCentreState.DRAINING})
    assert _epoch(store) > before, "the data centre stopped taking placements"


def test_snapshot_is_reused_and_own_claims_are_patched_in(stores: tuple[Store, Store]) -> None:
    store, _ = stores
    index = store.instances.index
    with store.db.transaction() as session:
        first, fresh = index.view(session, None)
        assert fresh
        again, fresh = index.view(session, None)
        assert again is first, "nothing changed: the same snapshot"
        assert not fresh

    _state, host = _create(store, "a")
    with store.db.transaction() as session:
        view, fresh = index.view(session, None)
    assert not fresh, "a claim does not force a reload"
    patched = {h.name: h.used_ram_mib for h in view.hosts}
    assert patched[host or ""] == 1024, "this process's claim is in its snapshot"


def test_another_replicas_claims_cost_a_retry_never_an_overcommit(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    with first.db.transaction() as session:
        first.instances.index.view(session, None)  # first's snapshot: both hosts empty
    for i in range(3):  # the second replica fills three of the four slots
        assert _create(second, f"b{i}")[0] == InstanceState.SCHEDULED.value

    states = [_create(first, f"a{i}")[0] for i in range(2)]

    assert states == [InstanceState.SCHEDULED.value, InstanceState.PENDING.value]
    for name, (used, usable) in _used_ram(first).items():
        assert used <= usable, f"{name} overcommitted"


def test_a_pessimistic_snapshot_is_reloaded_before_giving_up(stores: tuple[Store, Store]) -> None:
    store, _ = stores
    index = store.instances.index
    with store.db.transaction() as session:
        view, _ = index.view(session, None)
    # Pretend a stale snapshot in which every host is full (a newer generation wins).
    index.patch(
        dataclasses.replace(h, used_ram_mib=h.usable_ram_mib, generation=h.generation + 100)
        for h in view.hosts
    )

    state, host = _create(store, "a")

    assert state == InstanceState.SCHEDULED.value
    assert host is not None


def test_stale_traits_are_checked_again_at_commit(stores: tuple[Store, Store]) -> None:
    store, _ = stores
    index = store.instances.index
    with store.db.transaction() as session:
        view, _ = index.view(session, None)
    # A stale snapshot claims h1 has a GPU and is the emptiest host; in truth only h2 has one.
    h2 = next(h for h in view.hosts if h.name == "h2")
    index.patch(
        [
            *(
                dataclasses.replace(h, traits=frozenset({"gpu"}), generation=h.generation + 100)
                for h in view.hosts
                if h.name == "h1"
            ),
            dataclasses.replace(h2, used_ram_mib=1024, generation=h2.generation + 100),
        ]
    )

    state, host = _create(store, "a", Hints(required_traits=frozenset({"gpu"})))

    assert (state, host) == (InstanceState.SCHEDULED.value, "h2")
