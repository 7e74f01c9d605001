"""CRUD of organisations, users, data centres, flavors and images through the API, on
SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api_helper import ADMIN_TOKEN, Api, error


def test_whoami_and_unauthenticated(bare_api: Api) -> None:
    assert bare_api.get("/v1/whoami", expect=200).json() == {
        "name": "admin",
        "role": "platform-admin",
        "scope": "gov",
    }
    body = error(bare_api.get("/v1/whoami", token=None), 401, "auth.unauthenticated")
    assert "bearer token" in body["message"]
    error(bare_api.get("/v1/whoami", token="not-a-real-token"), 401, "auth.unauthenticated")
    error(
        bare_api.get("/v1/whoami", token=None, headers={"Authorization": f"Basic {ADMIN_TOKEN}"}),
        401,
        "auth.unauthenticated",
    )


def test_unknown_route_and_method(bare_api: Api) -> None:
    error(bare_api.get("/v1/nothing-here"), 404, "route.not_found")
    error(bare_api.call("PUT", "/v1/flavors"), 405, "route.method_not_allowed")


def test_organisation_tree(bare_api: Api) -> None:
    api = bare_api
    moi = api.create_org("moi", "gov", "Ministry of the Interior")
    assert moi == {
        "code": "moi",
        "name": "Ministry of the Interior",
        "kind": "ministry",
        "parent": "gov",
        "path": "gov/moi",
    }
    assert api.create_org("nfa", "moi")["kind"] == "agency"
    project = api.create_org("disaster", "nfa", "防救災雲")
    assert (project["kind"], project["path"]) == ("project", "gov/moi/nfa/disaster")
    assert project["name"] == "防救災雲"

    body = error(
        api.post("/v1/orgs", json={"code": "sub", "name": "x", "parent": "disaster"}),
        400,
        "request.invalid",
    )
    assert body["details"]["field"] == "parent"
    assert "projects have no children" in body["message"]
    error(
        api.post("/v1/orgs", json={"code": "moi", "name": "again", "parent": "gov"}),
        409,
        "org.exists",
    )
    error(
        api.post("/v1/orgs", json={"code": "x", "name": "x", "parent": "nope"}),
        404,
        "org.not_found",
    )

    listed = api.get("/v1/orgs", expect=200).json()
    assert [o["path"] for o in listed] == ["gov", "gov/moi", "gov/moi/nfa", "gov/moi/nfa/disaster"]
    assert api.get("/v1/orgs/nfa", expect=200).json()["parent"] == "moi"
    error(api.get("/v1/orgs/nope"), 404, "org.not_found")


def test_users(api: Api) -> None:
    token = api.create_user("chen", "ministry-admin", "moi")
    assert token.startswith("gcu_")
    assert api.get("/v1/whoami", token=token, expect=200).json() == {
        "name": "chen",
        "role": "ministry-admin",
        "scope": "gov/moi",
    }
    error(
        api.post("/v1/users", json={"name": "chen", "role": "member", "organisation": "moi"}),
        409,
        "user.exists",
    )
    error(
        api.post("/v1/users", json={"name": "lin", "role": "member", "organisation": "nope"}),
        404,
        "org.not_found",
    )
    # a ministry admin creates members below it and sees only its subtree's users
    member = api.post(
        "/v1/users",
        token=token,
        json={"name": "wang", "role": "member", "organisation": "nfa"},
        expect=201,
    ).json()
    assert member["user"] == {
        "name": "wang",
        "role": "member",
        "organisation": "nfa",
        "org_path": "gov/moi/nfa",
    }
    assert [u["name"] for u in api.get("/v1/users", token=token, expect=200).json()] == [
        "chen",
        "wang",
    ]
    assert {u["name"] for u in api.get("/v1/users", expect=200).json()} >= {
        "admin",
        "chen",
        "wang",
    }


def test_datacentres(bare_api: Api) -> None:
    api = bare_api
    created = api.post(
        "/v1/datacentres",
        json={"code": "tpe-1", "name": "Taipei 1", "location": "Neihu"},
        expect=201,
    ).json()
    assert created == {
        "code": "tpe-1",
        "name": "Taipei 1",
        "location": "Neihu",
        "state": "active",
        "placement_policy": "spread",  # the default (issue 3, docs/scheduling.md)
        "evacuation_policy": "none",  # the default (docs/operator-guide.md)
    }
    api.create_dc("txg-1", "Taichung 1")
    assert [d["code"] for d in api.get("/v1/datacentres", expect=200).json()] == [
        "tpe-1",
        "txg-1",
    ]
    assert api.get("/v1/datacentres/txg-1", expect=200).json()["name"] == "Taichung 1"
    error(api.post("/v1/datacentres", json={"code": "tpe-1", "name": "dup"}), 409, "dc.exists")

    patched = api.patch("/v1/datacentres/tpe-1", json={"state": "draining"}, expect=200).json()
    assert patched["state"] == "draining"
    assert patched["location"] == "Neihu"  # untouched fields stay
    assert api.get("/v1/datacentres/tpe-1", expect=200).json()["state"] == "draining"
    error(api.patch("/v1/datacentres/nope", json={"state": "draining"}), 404, "dc.not_found")

    # a data centre with hosts cannot be deleted
    api.register_host("txg-h01", dc="txg-1")
    body = error(api.delete("/v1/datacentres/txg-1"), 409, "dc.in_use")
    assert body["details"]["in_use"] == 1
    api.delete("/v1/datacentres/tpe-1", expect=204)
    error(api.get("/v1/datacentres/tpe-1"), 404, "dc.not_found")
    error(api.delete("/v1/datacentres/tpe-1"), 404, "dc.not_found")


def test_flavors(api: Api) -> None:
    created = api.create_flavor("c2.xlarge", 8, 16384, 160)
    assert created == {
        "name": "c2.xlarge",
        "vcpus": 8,
        "ram_mib": 16384,
        "disk_gib": 160,
        "description": "",
    }
    names = [f["name"] for f in api.get("/v1/flavors", expect=200).json()]
    assert names == sorted(names)
    assert "c2.xlarge" in names
    assert api.get("/v1/flavors/c2.xlarge", expect=200).json() == created
    error(api.post("/v1/flavors", json=created), 409, "flavor.exists")
    error(api.patch("/v1/flavors/c2.xlarge", json={"vcpus": 2}), 405, "route.method_not_allowed")

    # in use by a live instance -> refused; once the instance is gone -> allowed
    big = api.register_host("h1", vcpus=32, ram_mib=65536, disk_gib=1000)
    api.register_host("h2")
    inst = api.create_instance("big-01", flavor="c2.xlarge")
    assert inst["host_name"] == "h1"
    body = error(api.delete("/v1/flavors/c2.xlarge"), 409, "flavor.in_use")
    assert body["details"]["in_use"] == 1
    api.act(inst["id"], "delete")
    error(api.delete("/v1/flavors/c2.xlarge"), 409, "flavor.in_use")  # DELETING still counts
    big.converge()  # the agent removes the domain and reports it absent
    assert api.instance(inst["id"])["state"] == "DELETED"
    api.delete("/v1/flavors/c2.xlarge", expect=204)
    error(api.get("/v1/flavors/c2.xlarge"), 404, "flavor.not_found")
    # the deleted instance keeps its flavor snapshot
    assert api.instance(inst["id"])["flavor"] == "c2.xlarge"


def test_images(api: Api) -> None:
    kernel = api.post(
        "/v1/images",
        json={
            "name": "tiny-linux",
            "format": "kernel",
            "kernel_path": "/var/lib/govcloud/vmlinuz",
            "initrd_path": "/var/lib/govcloud/initrd.img",
            "cmdline": "console=ttyS0 quiet",
            "min_ram_mib": 64,
        },
        expect=201,
    ).json()
    assert kernel["format"] == "kernel"
    assert kernel["path"] is None
    assert api.get("/v1/images/tiny-linux", expect=200).json() == kernel
    assert [i["name"] for i in api.get("/v1/images", expect=200).json()] == [
        "cirros",
        "tiny-linux",
    ]
    error(api.post("/v1/images", json={"name": "cirros"}), 409, "image.exists")
    api.delete("/v1/images/tiny-linux", expect=204)
    error(api.delete("/v1/images/tiny-linux"), 404, "image.not_found")


def test_image_minimums_are_checked_against_the_flavor(api: Api) -> None:
    api.create_image("win", min_ram_mib=4096, min_disk_gib=40)
    api.register_host("h1")
    body = error(
        api.post(
            "/v1/instances",
            json={"name": "w1", "project": "disaster", "flavor": "m1.small", "image": "win"},
        ),
        400,
        "request.invalid",
    )
    assert body["details"] == {"field": "flavor", "limit": 4096, "value": 1024}
    assert "needs at least 4096 MiB" in body["message"]
    assert api.create_instance("w2", flavor="m1.medium", image="win")["state"] == "SCHEDULED"
    assert [i["name"] for i in api.instances()] == ["w2"]
