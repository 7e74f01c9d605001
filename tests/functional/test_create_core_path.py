"""The instance create path written with SQLAlchemy Core
(``controlplane/store/instance_create.py``): the order in which a request is refused and
what each refusal names, the rows a create writes (one instance, one first history event,
one ``create`` action, one quota charge) on the placed, PENDING and lost-race paths, and
the audit event an API create with ``count`` > 1 writes. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from controlplane.domain.datacentre import DataCentre
from controlplane.domain.errors import GovcloudError, InvalidRequest, NotFound
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.domain.instance import Instance, InstanceState, PlacementExplanation
from controlplane.domain.quota import instance_usage
from controlplane.domain.resources import Resources
from controlplane.scheduler.record import DecisionRecord
from controlplane.store import Store, open_store
from controlplane.store.tables import (
    InstanceActionRow,
    InstanceEventRow,
    InstanceRow,
    QuotaNodeRow,
)
from quotas import Usage
from tests.api_helper import Api, FakeClock
from tests.functional.fleet_helpers import register_host

SMALL = Flavor(name="s1", vcpus=1, ram_mib=1024, disk_gib=10)
#: Larger than any host: a create of it stays PENDING.
HUGE = Flavor(name="huge", vcpus=1, ram_mib=4096, disk_gib=10)
#: Room for exactly two s1 instances (RAM binds; 512 MiB is reserved by default).
HOST = Resources(vcpus=16, ram_mib=512 + 2 * 1024, disk_gib=1000)
PROJECT_PATH = "gov/moe/moe-it/dict"


def _register(store: Store, name: str) -> str:
    return register_host(store, name, HOST)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store with data centre tpe-1, hosts h1 and h2 (two s1 slots each), flavors s1 and
    huge, images cirros and win (needs 2048 MiB) and disk (needs 20 GiB), project dict."""
    opened = open_store(db_url, clock=FakeClock(), migrate=False)
    opened.datacentres.create(DataCentre(code="tpe-1", name="Taipei 1"))
    opened.flavors.create(SMALL)
    opened.flavors.create(HUGE)
    opened.images.create(Image(name="cirros", min_disk_gib=1))
    opened.images.create(Image(name="win", min_ram_mib=2048))
    opened.images.create(Image(name="disk", min_disk_gib=20))
    opened.orgs.create("moe", "Education", "gov")
    opened.orgs.create("moe-it", "IT", "moe")
    opened.orgs.create("dict", "Dictionary", "moe-it")
    _register(opened, "h1")
    _register(opened, "h2")
    yield opened
    opened.close()


def _create(store: Store, name: str = "a", **fields: Any) -> Instance:
    request: dict[str, Any] = {
        "name": name,
        "project": "dict",
        "flavor": "s1",
        "image": "cirros",
        "datacentre": None,
        "actor": "tester",
        "request_id": f"req-{name}",
    }
    return store.instances.create(**(request | fields))


def _written(store: Store) -> dict[str, Any]:
    """Row counts of the tables a create writes, and every quota node's usage."""
    with store.db.read() as session:
        counts = {
            row.__tablename__: session.scalar(select(func.count()).select_from(row))
            for row in (InstanceRow, InstanceEventRow, InstanceActionRow)
        }
        usage = dict(session.execute(select(QuotaNodeRow.org, QuotaNodeRow.usage)).all())
    return counts | {"quota": usage}


def _usage(store: Store, org: str = "dict") -> Usage:
    with store.db.read() as session:
        return Usage(session.scalar(select(QuotaNodeRow.usage).where(QuotaNodeRow.org == org)))


def _rows(store: Store, instance_id: str) -> tuple[list[InstanceEventRow], list[InstanceActionRow]]:
    with store.db.read() as session:
        events = list(
            session.scalars(
                select(InstanceEventRow).where(InstanceEventRow.instance_id == instance_id)
            )
        )
        actions = list(
            session.scalars(
                select(InstanceActionRow).where(InstanceActionRow.instance_id == instance_id)
            )
        )
        session.expunge_all()
    return events, actions


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "details"),
    [
        pytest.param(
            {"project": "moe-it", "flavor": "nope"},
            InvalidRequest,
            {"field": "project", "value": "moe-it"},
            id="not-a-project-before-missing-flavor",
        ),
        pytest.param(
            {"project": "nope", "flavor": "nope", "image": "nope"},
            NotFound,
            {"kind": "org", "id": "nope"},
            id="missing-org-first",
        ),
        pytest.param(
            {"flavor": "nope", "image": "nope"},
            NotFound,
            {"kind": "flavor", "id": "nope"},
            id="missing-flavor-before-missing-image",
        ),
        pytest.param(
            {"image": "nope"},
            NotFound,
            {"kind": "image", "id": "nope"},
            id="missing-image",
        ),
        pytest.param(
            {"datacentre": "nope"},
            NotFound,
            {"kind": "dc", "id": "nope"},
            id="missing-dc",
        ),
        pytest.param(
            {"datacentre": "nope", "image": "win"},
            NotFound,
            {"kind": "dc", "id": "nope"},
            id="missing-dc-before-flavor-too-small",
        ),
        pytest.param(
            {"image": "win"},
            InvalidRequest,
            {"field": "flavor", "limit": 2048, "value": 1024},
            id="flavor-ram-too-small",
        ),
        pytest.param(
            {"image": "disk", "datacentre": "tpe-1"},
            InvalidRequest,
            {"field": "flavor", "limit": 20, "value": 10},
            id="flavor-disk-too-small",
        ),
    ],
)
def test_refusals_come_in_order_name_the_field_and_write_nothing(
    store: Store, fields: dict[str, str], error: type[GovcloudError], details: dict[str, Any]
) -> None:
    _create(store, "before")  # usage and rows that a refusal must leave as they are
    before = _written(store)

    with pytest.raises(error) as raised:
        _create(store, "refused", **fields)

    assert type(raised.value) is error
    assert raised.value.details == details
    assert _written(store) == before


# -- rows of one create -------------------------------------------------------------------


def test_a_placed_create_writes_one_event_one_action_and_one_charge(store: Store) -> None:
    before = _written(store)

    created = _create(store, "a", datacentre="tpe-1")

    assert created.state is InstanceState.SCHEDULED
    assert created.host is not None
    assert created.pending_reason is None
    events, actions = _rows(store, created.id)
    assert [
        (e.from_state, e.to_state, e.host_id, e.datacentre, e.org_path, e.desired_power, e.at)
        for e in events
    ] == [
        (
            None,
            InstanceState.SCHEDULED.value,
            created.host,
            "tpe-1",
            PROJECT_PATH,
            created.desired_power.value,
            created.created_at,
        )
    ]
    assert [(a.action, a.request_id, a.actor, a.result, a.started_at) for a in actions] == [
        ("create", "req-a", "tester", "pending", created.created_at)
    ]
    after = _written(store)
    for table in ("instances", "instance_events", "instance_actions"):
        assert after[table] == before[table] + 1, table
    assert _usage(store) == instance_usage(SMALL.resources)
    assert store.instances.get(created.id, "gov") == created


def test_a_pending_create_writes_one_pending_event_with_its_explanation(store: Store) -> None:
    created = _create(store, "big", flavor="huge")

    assert created.state is InstanceState.PENDING
    assert created.host is None
    assert created.placement is not None
    assert created.pending_reason == created.placement.message
    assert created.placement.placed == 0
    events, actions = _rows(store, created.id)
    assert [(e.from_state, e.to_state, e.host_id, e.datacentre, e.at) for e in events] == [
        (None, InstanceState.PENDING.value, None, None, created.created_at)
    ]
    assert [a.action for a in actions] == ["create"]
    with store.db.read() as session:
        row = session.get(InstanceRow, created.id)
        assert row is not None
        assert row.pending_reason == created.pending_reason
        assert PlacementExplanation.model_validate(row.placement) == created.placement
    assert store.instances.get(created.id, "gov").placement == created.placement
    assert _usage(store) == instance_usage(HUGE.resources), "a PENDING instance is charged"


def test_a_lost_placement_race_is_retried_without_writing_twice(store: Store) -> None:
    decisions: list[DecisionRecord] = []
    store.instances.on_decision = decisions.append
    for name in ("x1", "x2", "x3"):  # three of the four slots: one host full, one with room
        assert _create(store, name).state is InstanceState.SCHEDULED
    index = store.instances.index
    with store.db.read() as session:
        view, _ = index.view(session, None)
    # A stale snapshot in which the full host looks empty and the other one full (a newer
    # generation wins): the first attempt picks the full host and loses the race.
    index.patch(
        dataclasses.replace(
            h,
            used_ram_mib=0 if h.used_ram_mib == h.usable_ram_mib else h.usable_ram_mib,
            generation=h.generation + 100,
        )
        for h in view.hosts
    )
    before = _written(store)
    charged = _usage(store)
    decisions.clear()

    created = _create(store, "a")

    assert [d.outcome for d in decisions] == ["conflict", "placed"]
    assert created.state is InstanceState.SCHEDULED
    after = _written(store)
    for table in ("instances", "instance_events", "instance_actions"):
        assert after[table] == before[table] + 1, table
    events, actions = _rows(store, created.id)
    assert [(e.to_state, e.host_id) for e in events] == [
        (InstanceState.SCHEDULED.value, created.host)
    ]
    assert [a.action for a in actions] == ["create"]
    assert _usage(store) == charged + instance_usage(SMALL.resources)
    used = {h.name: (h.used.ram_mib, h.usable.ram_mib) for h in store.hosts.list()}
    assert used == {"h1": (2048, 2048), "h2": (2048, 2048)}, "no double claim"


# -- audit of API creates -----------------------------------------------------------------


def test_a_batch_create_is_audited_once_naming_every_instance(api: Api) -> None:
    api.register_host("tpe-h01")
    body = {
        "name": "web",
        "project": "disaster",
        "flavor": "m1.small",
        "image": "cirros",
        "count": 8,
    }

    response = api.post("/v1/instances", json=body, expect=202)

    ids = [item["id"] for item in response.json()["items"]]
    assert len(set(ids)) == 8
    events = api.audit(request_id=response.headers["x-request-id"])
    assert len(events) == 1, events
    event = events[0]
    assert event["action"] == "instance.create"
    assert event["target_type"] == "instance"
    # The target column holds 200 characters (five ids and part of a sixth); the
    # details name every instance.
    assert event["target_id"] == ",".join(ids)[:200]
    assert event["details"]["ids"] == ids
    assert (event["outcome"], event["status_code"]) == ("success", 202)
    assert event["organisation"] == "gov/moi/nfa/disaster"
