"""``Fleet.replace`` shares the columns a patch leaves unchanged: a claim (only ``used_*``
changes) copies ``used`` alone and shares every other column with the old fleet, which
stays as it was; a change of state, traits or usable amounts copies those columns; an
appended host grows every column. Every column stays read-only."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from controlplane.scheduler import HostView
from controlplane.scheduler.fleet import Fleet
from tests.unit.test_fleet import assert_same, host

COLUMNS = ("usable", "used", "placeable", "datacentre", "traits", "name_crc", "name_bytes")


def fleet_of(n: int = 4) -> tuple[Fleet, list[HostView]]:
    """``n`` active hosts in tpe-1, the odd ones with trait ``ssd``."""
    hosts = [host(i, traits=frozenset({"ssd"}) if i % 2 else frozenset()) for i in range(n)]
    return Fleet.of(hosts), hosts


def columns(fleet: Fleet) -> dict[str, NDArray[Any]]:
    return {name: getattr(fleet, name) for name in COLUMNS}


def assert_read_only(fleet: Fleet) -> None:
    for name, column in columns(fleet).items():
        assert not column.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            column[..., 0] = 1


def assert_shared_except(new: Fleet, old: Fleet, copied: set[str]) -> None:
    """The columns in ``copied`` are new arrays; every other one is the old array."""
    for name in COLUMNS:
        if name in copied:
            assert getattr(new, name) is not getattr(old, name), f"{name} must be copied"
            assert not np.shares_memory(getattr(new, name), getattr(old, name)), name
        else:
            assert getattr(new, name) is getattr(old, name), f"{name} must be shared"


def test_a_claim_copies_used_only_and_leaves_the_old_fleet_alone() -> None:
    old, hosts = fleet_of()
    before = {name: column.copy() for name, column in columns(old).items()}
    claimed = dataclasses.replace(
        hosts[2], used_vcpus=2, used_ram_mib=16, used_disk_gib=20, generation=1
    )

    new = old.replace([claimed])

    assert_shared_except(new, old, {"used"})
    assert new.used[:, 2].tolist() == [2, 16, 20]
    for name, column in columns(old).items():
        assert np.array_equal(column, before[name]), f"old fleet's {name} changed"
    assert old.used[:, 2].tolist() == [0, 0, 0]
    assert old.host(2) is hosts[2]
    assert new.host(2) is claimed
    assert new.generation.tolist() == [0, 0, 1, 0]
    assert_read_only(new)
    assert_read_only(old)
    assert_same(new, [*hosts[:2], claimed, *hosts[3:]])
    assert_same(old, hosts)


def test_a_patch_that_changes_nothing_shares_every_column() -> None:
    old, hosts = fleet_of()
    new = old.replace([dataclasses.replace(hosts[1], generation=7)])
    assert_shared_except(new, old, set())
    assert new.generation.tolist() == [0, 7, 0, 0]


def test_successive_claims_share_down_the_lineage() -> None:
    first, hosts = fleet_of()
    second = first.replace([dataclasses.replace(hosts[0], used_vcpus=1)])
    third = second.replace([dataclasses.replace(hosts[3], used_ram_mib=8)])
    assert_shared_except(third, first, {"used"})
    assert_shared_except(third, second, {"used"})
    assert first.used.sum() == 0
    assert second.used.sum() == 1
    assert third.used.sum() == 9
    assert_read_only(third)


@pytest.mark.parametrize(
    ("change", "copied"),
    [
        ({"state": "maintenance"}, {"placeable"}),
        ({"datacentre_active": False}, {"placeable"}),
        ({"traits": frozenset({"gpu"})}, {"traits"}),  # a new trait set: the vocabulary grows
        ({"traits": frozenset({"ssd"})}, {"traits"}),  # a known trait set
        ({"usable_ram_mib": 32}, {"usable"}),
        ({"datacentre": "txg-1"}, {"datacentre"}),
        ({"name": "renamed"}, {"name_crc", "name_bytes"}),
        (
            {"state": "down", "used_vcpus": 3, "usable_disk_gib": 50},
            {"placeable", "used", "usable"},
        ),
    ],
)
def test_a_change_copies_the_columns_it_touches(
    change: dict[str, object], copied: set[str]
) -> None:
    old, hosts = fleet_of()
    changed = dataclasses.replace(hosts[0], **change)  # type: ignore[arg-type]

    new = old.replace([changed])

    assert_shared_except(new, old, copied)
    assert_read_only(new)
    assert_same(old, hosts)
    assert_same(new, [changed, *hosts[1:]])


def test_appending_a_host_grows_every_column() -> None:
    old, hosts = fleet_of()
    claimed = dataclasses.replace(hosts[1], used_vcpus=4)
    added = host(9, traits=frozenset({"gpu"}), datacentre="khh-1", used_ram_mib=3)

    new = old.replace([claimed, added])

    assert len(new) == 5
    assert len(old) == 4
    assert_shared_except(new, old, set(COLUMNS))
    assert new.position(added.id) == 4
    assert old.position(added.id) is None
    assert_read_only(new)
    assert_same(old, hosts)
    assert_same(new, [hosts[0], claimed, *hosts[2:], added])
    # and a claim on the grown fleet shares again
    newer = new.replace([dataclasses.replace(added, used_ram_mib=5)])
    assert_shared_except(newer, new, {"used"})
    assert newer.used[1].tolist() == [0, 0, 0, 0, 5]
