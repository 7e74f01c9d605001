"""Server groups, ``count``, policies, anti-starvation: the API on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api_helper import Api, error, fields_named


def group(api: Api, name: str, policy: str, project: str = "disaster", **extra: Any) -> str:
    body = {"name": name, "project": project, "policy": policy} | extra
    gid: str = api.post("/v1/server-groups", json=body, expect=201).json()["id"]
    return gid


def create(api: Api, name: str, expect: int = 202, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    result: dict[str, Any] = api.post("/v1/instances", json=body | fields, expect=expect).json()
    return result


def test_anti_affinity_group_with_count_and_max_per_host(api: Api) -> None:
    for i in range(3):
        api.register_host(f"tpe-h0{i}")
    gid = group(api, "web", "anti-affinity", max_per_host=2)
    batch = create(api, "web", count=6, server_group="web", policy="pack")
    assert (batch["placed"], batch["pending"]) == (6, 0)
    assert [i["name"] for i in batch["items"]] == [f"web-{n}" for n in range(1, 7)]
    per_host: dict[str, int] = {}
    for inst in batch["items"]:
        per_host[inst["host_name"]] = per_host.get(inst["host_name"], 0) + 1
        assert inst["server_group"] == gid
        assert inst["placement"]["outcome"] == "placed"
    assert sorted(per_host.values()) == [2, 2, 2]
    shown = api.get(f"/v1/server-groups/{gid}", expect=200).json()
    assert len(shown["members"]) == 6
    # a seventh member has nowhere to go: PENDING, and `why` says the group rule
    extra = create(api, "web-7", server_group=gid)
    assert extra["state"] == "PENDING"
    why = api.get(f"/v1/instances/{extra['id']}/placement", expect=200).json()
    assert why["explanation"]["rejected"] == {"server_group": 3}
    assert "anti-affinity: holds 2 group member(s), at most 2 per host" in why["pending_reason"]
    # all-or-nothing: 4 more cannot all fit anywhere -> nothing is created
    refused = api.post(
        "/v1/instances",
        json={
            "name": "more",
            "project": "disaster",
            "flavor": "m1.small",
            "image": "cirros",
            "count": 4,
            "server_group": "web",
        },
    )
    err = error(refused, 409, "placement.no_valid_host")
    assert err["details"]["requested"] == 4
    assert err["details"]["explanation"]["rejected"] == {"server_group": 3}
    assert not api.instances(name="more-1")
    # deleting a group with members is refused; an empty one goes
    error(api.delete(f"/v1/server-groups/{gid}"), 409, "server_group.in_use")
    empty = group(api, "spare", "affinity")
    api.delete(f"/v1/server-groups/{empty}", expect=204)


def test_affinity_and_partial_count(api: Api) -> None:
    api.register_host("tpe-h01", vcpus=4, ram_mib=4608)  # room for 4 m1.small
    api.register_host("tpe-h02", vcpus=2, ram_mib=2560)  # room for 2
    group(api, "db", "affinity")
    batch = create(api, "db", count=3, server_group="db")
    assert {i["host_name"] for i in batch["items"]} == {"tpe-h01"}
    # without all_or_nothing: what fits is placed, the rest stays PENDING with reasons
    rest = create(api, "db-more", count=3, server_group="db", all_or_nothing=False)
    assert (rest["placed"], rest["pending"]) == (1, 2)
    pending = [i for i in rest["items"] if i["state"] == "PENDING"]
    assert all("placed 1 of 3; then no valid host" in i["pending_reason"] for i in pending)
    assert all(i["placement"]["capacity_short"] == {"ram_mib": 1} for i in pending)


def test_policies_per_datacentre_and_per_request(api: Api) -> None:
    for i in range(3):
        api.register_host(f"tpe-h0{i}")
    spread = create(api, "s", count=3)
    assert len({i["host_name"] for i in spread["items"]}) == 3
    api.patch("/v1/datacentres/tpe-1", json={"placement_policy": "pack"}, expect=200)
    assert api.get("/v1/datacentres/tpe-1", expect=200).json()["placement_policy"] == "pack"
    packed = create(api, "p", count=3, datacentre="tpe-1")
    assert len({i["host_name"] for i in packed["items"]}) == 1
    assert packed["items"][0]["placement"]["policy"] == "pack"
    override = create(api, "o", count=3, datacentre="tpe-1", policy="spread")
    assert override["items"][0]["placement"]["policy"] == "spread"


def test_traits_on_create_and_dry_run(api: Api) -> None:
    api.register_host("tpe-h01", traits=["ssd"])
    api.register_host("tpe-h02", traits=["ssd", "fips"])
    api.register_host("tpe-h03")
    inst = create(api, "t", required_traits=["ssd"], forbidden_traits=["fips"])
    assert inst["host_name"] == "tpe-h01"
    before = len(api.instances())
    dry = api.post(
        "/v1/schedule",
        json={"flavor": "m1.large", "count": 5, "required_traits": ["ssd"], "policy": "pack"},
        expect=200,
    ).json()
    assert dry["complete"] is True
    assert [p["index"] for p in dry["placements"]] == [1, 2, 3, 4, 5]
    assert {p["host"] for p in dry["placements"]} <= {"tpe-h01", "tpe-h02"}
    assert dry["explanation"]["rejected"] == {"traits": 1}
    nowhere = api.post("/v1/schedule", json={"flavor": "m1.large", "count": 40}, expect=200).json()
    assert nowhere["complete"] is False
    assert nowhere["explanation"]["capacity_short"]
    assert len(api.instances()) == before  # a dry run writes nothing
    assert any(e["action"] == "schedule.dry_run" for e in api.audit())


def test_validation_names_field_limit_and_value(api: Api) -> None:
    body = {"name": "v", "project": "disaster", "flavor": "m1.small", "image": "cirros"}
    too_many = error(api.post("/v1/instances", json=body | {"count": 101}), 422)
    problem = too_many["details"]["errors"][0]
    assert (problem["field"], problem["value"], problem["limit"]) == (
        "count",
        101,
        {"le": 100},
    )
    assert fields_named(error(api.post("/v1/instances", json=body | {"policy": "x"}), 422)) == {
        "policy"
    }
    long_name = error(api.post("/v1/instances", json=body | {"name": "a" * 62, "count": 10}), 400)
    assert long_name["details"]["field"] == "name"
    bad_group = {"name": "g", "project": "disaster", "policy": "affinity", "max_per_host": 2}
    err = error(api.post("/v1/server-groups", json=bad_group), 400)
    assert (err["details"]["field"], err["details"]["value"]) == ("max_per_host", 2)
    assert fields_named(
        error(api.post("/v1/server-groups", json=bad_group | {"max_per_host": 0}), 422)
    ) == {"max_per_host"}
    assert fields_named(
        error(api.post("/v1/schedule", json={"flavor": "m1.small", "count": 0}), 422)
    ) == {"count"}
    error(
        api.post("/v1/instances", json=body | {"server_group": "nope"}),
        404,
        "server_group.not_found",
    )


def test_groups_are_isolated_between_ministries(api: Api) -> None:
    moi = api.create_user("moi-admin", "ministry-admin", "moi")
    motc = api.create_user("motc-admin", "ministry-admin", "motc")
    gid = group(api, "web", "anti-affinity")
    assert [g["id"] for g in api.get("/v1/server-groups", token=moi, expect=200).json()] == [gid]
    assert api.get("/v1/server-groups", token=motc, expect=200).json() == []
    error(api.get(f"/v1/server-groups/{gid}", token=motc), 404, "server_group.not_found")
    error(api.delete(f"/v1/server-groups/{gid}", token=motc), 404)
    # another project's group cannot be joined, by id or by name
    api.register_host("tpe-h01")
    other = {"name": "x", "project": "traffic", "flavor": "m1.small", "image": "cirros"}
    error(api.post("/v1/instances", json=other | {"server_group": gid}), 404)
    error(api.post("/v1/instances", json=other | {"server_group": "web"}), 404)
    error(
        api.post(
            "/v1/server-groups",
            json={"name": "w", "project": "disaster", "policy": "affinity"},
            token=motc,
        ),
        404,
    )


def test_old_large_pending_request_holds_back_younger_ones(api: Api) -> None:
    api.store.instances.hold_after = timedelta(minutes=5)
    agent = api.register_host("tpe-h01", vcpus=8, ram_mib=8704)  # 8192 MiB usable
    small = [create(api, f"s{i}", flavor="m1.medium")["id"] for i in range(2)]  # 2 x 4096
    big = create(api, "big", flavor="m1.large")  # needs all 8192
    assert big["state"] == "PENDING"
    assert big["placement"]["fits_when_free"] == 1
    api.clock.advance(timedelta(minutes=10))  # the big request is now starving
    api.place_pending()
    # a small one is deleted: its room is held for the big request, not taken by newcomers
    api.act(small[0], "delete")
    agent.converge()
    newcomer = create(api, "new", flavor="m1.small")
    assert newcomer["state"] == "PENDING"
    assert "held behind older request big" in newcomer["pending_reason"]
    api.place_pending()
    assert api.instance(big["id"])["state"] == "PENDING"  # half the room is not enough
    api.act(small[1], "delete")
    agent.converge()
    api.place_pending()
    assert api.instance(big["id"])["state"] == "SCHEDULED"
    assert api.instance(newcomer["id"])["state"] == "PENDING"  # the host is full again
    api.store.instances.hold_after = None
