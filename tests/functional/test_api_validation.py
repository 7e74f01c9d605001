"""Bad input is refused at the edge with a 4xx and the standard error body naming the
field, nothing is created, and nothing a client sends produces a 500. Runs on SQLite and
PostgreSQL (which is stricter: NULs and over-long strings are refused by the database)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_helper import Api, error, fields_named

VALID = {"name": "web-01", "project": "disaster", "flavor": "m1.small", "image": "cirros"}

METACHARACTER_NAMES = [
    "<web>",
    "web&01",
    "web;reboot",
    "web$(id)",
    "web`id`",
    "web'01",
    'web"01',
    "web|cat",
    "web 01",
    "web\n01",
    "web\x0001",
    "../etc",
    "web/01",
    "]]><domain>",
    "&lt;x&gt;",
    "名稱",
]


@pytest.fixture
def placed_api(api: Api) -> Api:
    """The seeded API with one host, so a valid request would be placed."""
    api.register_host("tpe-h01")
    return api


def assert_nothing_created(api: Api, case: object) -> None:
    assert api.instances() == [], case
    assert api.instances(state="PENDING") == [], case
    assert api.instances(state="DELETED") == [], case
    (host,) = api.hosts()
    assert host["used"] == {"vcpus": 0, "ram_mib": 0, "disk_gib": 0}, case


def post_raw(api: Api, path: str, raw: bytes) -> httpx.Response:
    return api.post(path, content=raw, headers={"Content-Type": "application/json"})


def test_bad_instance_names(placed_api: Api) -> None:
    for name in [*METACHARACTER_NAMES, "x" * 64, "", "-web", ".web"]:
        response = placed_api.post("/v1/instances", json=VALID | {"name": name})
        body = error(response, 422, "request.invalid")
        assert fields_named(body) == {"name"}, name
        (problem,) = body["details"]["errors"]
        assert problem["value"] == name
        assert "pattern" in problem["limit"], name
        assert "name:" in body["message"], name
    assert_nothing_created(placed_api, "bad names")
    assert placed_api.create_instance("x" * 63)["name"] == "x" * 63  # the longest allowed


def test_metacharacters_in_every_reference_field(placed_api: Api) -> None:
    cases = [
        ("project", "MOI;"),
        ("project", "moi$(id)"),
        ("flavor", "m1.small<"),
        ("flavor", "m1`id`"),
        ("image", "$(reboot)"),
        ("image", "cirros&amp;"),
        ("datacentre", "tpe 1"),
        ("datacentre", "tpe-1'"),
    ]
    for field, value in cases:
        body = error(
            placed_api.post("/v1/instances", json=VALID | {field: value}), 422, "request.invalid"
        )
        assert fields_named(body) == {field}, (field, value)
    assert_nothing_created(placed_api, cases)


def test_unknown_references(placed_api: Api) -> None:
    cases: list[tuple[dict[str, str], int, str, dict[str, str]]] = [
        ({"flavor": "m9.nope"}, 404, "flavor.not_found", {"kind": "flavor", "id": "m9.nope"}),
        ({"image": "nope"}, 404, "image.not_found", {"kind": "image", "id": "nope"}),
        ({"project": "nope"}, 404, "org.not_found", {"kind": "org", "id": "nope"}),
        ({"datacentre": "nope"}, 404, "dc.not_found", {"kind": "dc", "id": "nope"}),
        ({"project": "nfa"}, 400, "request.invalid", {"field": "project", "value": "nfa"}),
        ({"project": "moi"}, 400, "request.invalid", {"field": "project", "value": "moi"}),
    ]
    for changes, status, code, detail in cases:
        body = error(placed_api.post("/v1/instances", json=VALID | changes), status, code)
        assert body["details"] == detail, changes
    assert_nothing_created(placed_api, cases)


def test_wrong_types_unknown_and_missing_fields(placed_api: Api) -> None:
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({**VALID, "flavor": 1}, {"flavor"}),
        ({**VALID, "name": ["web"]}, {"name"}),
        ({**VALID, "name": None}, {"name"}),
        ({**VALID, "name": {"$ne": ""}}, {"name"}),
        ({**VALID, "name": True}, {"name"}),
        ({**VALID, "datacentre": 7}, {"datacentre"}),
        ({**VALID, "colour": "red"}, {"colour"}),
        ({**VALID, "host": "tpe-h01"}, {"host"}),
        ({**VALID, "state": "RUNNING"}, {"state"}),
        ({k: v for k, v in VALID.items() if k != "image"}, {"image"}),
        ({}, {"name", "project", "flavor", "image"}),
    ]
    for payload, fields in cases:
        body = error(placed_api.post("/v1/instances", json=payload), 422, "request.invalid")
        assert fields_named(body) == fields, payload
        for field in fields:
            assert f"{field}:" in body["message"], (payload, body["message"])
    assert_nothing_created(placed_api, cases)


def test_malformed_and_non_object_json(placed_api: Api) -> None:
    body = error(post_raw(placed_api, "/v1/instances", b"{bad"), 400, "request.malformed_json")
    assert "not valid JSON" in body["message"]
    assert body["details"] == {"position": 1}
    for raw in [
        b'{"name": "web-01",}',
        b"",
        b"[1, 2",
        b'{"name": "web\x00"}',
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"web-01"',
        b"42",
        b"{" * 50_000 + b"}" * 50_000,
    ]:
        response = post_raw(placed_api, "/v1/instances", raw)
        assert 400 <= response.status_code < 500, (raw[:40], response.text)
        error(response, response.status_code)
    assert_nothing_created(placed_api, "malformed")


BAD_CATALOGUE: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/orgs", {"code": "MOI", "name": "x", "parent": "gov"}, "code"),
    ("/v1/orgs", {"code": "moe", "name": "line\nbreak", "parent": "gov"}, "name"),
    ("/v1/orgs", {"code": "moe", "name": "x" * 201, "parent": "gov"}, "name"),
    ("/v1/orgs", {"code": "moe", "name": "x", "parent": "gov", "kind": "root"}, "kind"),
    ("/v1/orgs", {"code": "moe", "name": "x", "parent": "gov;"}, "parent"),
    ("/v1/datacentres", {"code": "tpe_2", "name": "x"}, "code"),
    ("/v1/datacentres", {"code": "tpe-2", "name": "x", "state": "on-fire"}, "state"),
    ("/v1/flavors", {"name": "f;1", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}, "name"),
    ("/v1/flavors", {"name": "f1", "vcpus": 0, "ram_mib": 512, "disk_gib": 1}, "vcpus"),
    ("/v1/flavors", {"name": "f1", "vcpus": "two", "ram_mib": 512, "disk_gib": 1}, "vcpus"),
    ("/v1/flavors", {"name": "f1", "vcpus": 1.5, "ram_mib": 512, "disk_gib": 1}, "vcpus"),
    ("/v1/flavors", {"name": "f1", "vcpus": 1, "ram_mib": 10**40, "disk_gib": 1}, "ram_mib"),
    ("/v1/images", {"name": "i1", "path": "/img/a;rm -rf /"}, "path"),
    ("/v1/images", {"name": "i1", "path": "/img/$(id).qcow2"}, "path"),
    ("/v1/images", {"name": "i1", "path": "/img/`id`.qcow2"}, "path"),
    ("/v1/images", {"name": "i1", "path": "relative.qcow2"}, "path"),
    ("/v1/images", {"name": "i1", "kernel_path": "/boot/<vmlinuz>"}, "kernel_path"),
    ("/v1/images", {"name": "i1", "format": "vmdk"}, "format"),
    ("/v1/images", {"name": "i1", "cmdline": "console=ttyS0\x00"}, "cmdline"),
    ("/v1/users", {"name": "u<1>", "role": "member", "organisation": "moi"}, "name"),
    ("/v1/users", {"name": "u1", "role": "god", "organisation": "moi"}, "role"),
    ("/v1/hosts/bootstrap-tokens", {"datacentre": "tpe-1", "ttl_hours": 0}, "ttl_hours"),
    ("/v1/hosts/bootstrap-tokens", {"datacentre": "tpe-1", "ttl_hours": 10**6}, "ttl_hours"),
]


def test_bad_catalogue_bodies(api: Api) -> None:
    lists = ("/v1/orgs", "/v1/datacentres", "/v1/flavors", "/v1/images", "/v1/users")
    before = {p: api.get(p, expect=200).json() for p in lists}
    for path, payload, field in BAD_CATALOGUE:
        body = error(api.post(path, json=payload), 422, "request.invalid")
        assert field in fields_named(body), (path, payload, body)
    assert {p: api.get(p, expect=200).json() for p in lists} == before


def test_non_finite_numbers(api: Api) -> None:
    for raw in [
        b'{"name": "f1", "vcpus": NaN, "ram_mib": 512, "disk_gib": 1}',
        b'{"name": "f1", "vcpus": Infinity, "ram_mib": 512, "disk_gib": 1}',
        b'{"name": "f1", "vcpus": 1, "ram_mib": -Infinity, "disk_gib": 1}',
        b'{"name": "f1", "vcpus": 1, "ram_mib": 512, "disk_gib": 1, "x": [NaN]}',
    ]:
        body = error(post_raw(api, "/v1/flavors", raw), 422, "request.invalid")
        assert fields_named(body) & {"vcpus", "ram_mib", "x"}, raw
    error(api.get("/v1/flavors/f1"), 404, "flavor.not_found")
    response = post_raw(
        api, "/v1/hosts/bootstrap-tokens", b'{"datacentre": "tpe-1", "ttl_hours": Infinity}'
    )
    assert fields_named(error(response, 422, "request.invalid")) == {"ttl_hours"}


HOSTILE: list[tuple[str, str, dict[str, str] | None]] = [
    ("GET", "/v1/instances/a%00b", None),
    ("GET", "/v1/instances/a%00b/actions", None),
    ("POST", "/v1/instances/a%00b/start", None),
    ("DELETE", "/v1/instances/a%00b", None),
    ("GET", "/v1/flavors/a%00b", None),
    ("DELETE", "/v1/images/a%00b", None),
    ("GET", "/v1/orgs/a%00b", None),
    ("GET", "/v1/hosts/a%00b", None),
    ("PATCH", "/v1/datacentres/a%00b", None),
    ("GET", "/v1/instances", {"name": "a\x00b"}),
    ("GET", "/v1/instances", {"host": "a\x00b"}),
    ("GET", "/v1/instances", {"marker": "a\x00b"}),
    ("GET", "/v1/instances", {"org": "a\x00b"}),
    ("GET", "/v1/audit", {"actor": "a\x00b"}),
    ("DELETE", "/v1/instances/" + "x" * 5000, None),
    ("POST", "/v1/instances/" + "x" * 5000 + "/stop", None),
    ("GET", "/v1/instances", {"name": "x" * 5000}),
    ("POST", "/v1/" + "y" * 3000, None),
]


def test_hostile_paths_and_queries_are_4xx_and_still_audited(placed_api: Api) -> None:
    for method, path, params in HOSTILE:
        case = (method, path[:60], params)
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        response = placed_api.call(method, path, params=params, **kwargs)
        assert response.status_code != 500, (case, response.text)
        if response.status_code >= 400:
            assert 400 <= response.status_code < 500, case
            error(response, response.status_code)
        else:
            assert response.json() in ({"items": [], "next_marker": None}, []), case
        if method != "GET":
            events = placed_api.audit(request_id=response.headers["x-request-id"])
            assert len(events) == 1, case
            assert events[0]["outcome"] == "failure", case
            assert len(events[0]["target_id"]) <= 200, case


def test_hostile_agent_bodies(placed_api: Api) -> None:
    token = placed_api.bootstrap_token()
    response = placed_api.client.post(
        "/v1/agent/register",
        json={
            "bootstrap_token": token,
            "name": "tpe-h02",
            "capacity": {"vcpus": 1, "ram_mib": 1024, "disk_gib": 1},
            "libvirt_uri": "qemu:///system\x00; rm -rf /",
        },
    )
    assert response.status_code in (201, 400), response.text  # PostgreSQL refuses NULs
    agent = placed_api.register_host("tpe-h03")
    bad_status = agent.report({"instance_id": "i\x00", "state": "running"}, expect=None)
    assert bad_status.status_code == 204 or 400 <= bad_status.status_code < 500, bad_status.text
    error(agent.report({"instance_id": "i", "state": "exploded"}, expect=None), 422)
    error(agent.report({"instances": "all"}, expect=None), 422)


def test_longest_host_name_is_still_audited(placed_api: Api) -> None:
    agent = placed_api.register_host("h" * 63, vcpus=64, ram_mib=262144)
    iid = placed_api.create_instance("web-01")["id"]
    assert placed_api.instance(iid)["host"] == agent.host_id  # the emptiest host
    response = agent.status(iid, "running")
    (event,) = placed_api.audit(request_id=response.headers["x-request-id"])
    assert event["actor"].startswith("agent:hhh")
    assert len(event["actor"]) <= 63


# -- fuzzing -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)

ENDPOINTS: dict[str, list[str]] = {
    "/v1/instances": ["name", "project", "flavor", "image", "datacentre"],
    "/v1/orgs": ["code", "name", "parent"],
    "/v1/flavors": ["name", "vcpus", "ram_mib", "disk_gib", "description"],
    "/v1/images": ["name", "format", "path", "kernel_path", "min_ram_mib", "cmdline"],
    "/v1/datacentres": ["code", "name", "location", "state"],
    "/v1/users": ["name", "role", "organisation"],
    "/v1/hosts/bootstrap-tokens": ["datacentre", "ttl_hours"],
    "/v1/agent/register": ["bootstrap_token", "name", "capacity", "traits", "libvirt_uri"],
}
PLAUSIBLE = st.sampled_from(
    [
        "web-01",
        "disaster",
        "m1.small",
        "cirros",
        "tpe-1",
        "moi",
        "member",
        "qcow2",
        1,
        512,
        "/var/lib/x.qcow2",
        "gcb_" + "x" * 40,
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    keys = ENDPOINTS[path]
    payload: dict[str, Any] = {
        key: draw(PLAUSIBLE | json_values) for key in keys if draw(st.booleans())
    }
    if draw(st.booleans()):
        payload |= draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2))
    raw = json.dumps(payload, allow_nan=True).encode()
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]  # truncated JSON
    return path, raw


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=bodies())
def test_fuzzed_bodies_never_cause_a_server_error(placed_api: Api, case: tuple[str, bytes]) -> None:
    path, raw = case
    response = placed_api.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code < 500, (path, raw, response.text)
    if response.status_code >= 400:
        error(response, response.status_code)


_SPEC: dict[int, list[tuple[str, str, list[dict[str, Any]]]]] = {}


def _routes(api: Api) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(method, path template, parameters) of every operation in the OpenAPI document."""
    key = id(api.app)
    if key not in _SPEC:
        spec = api.get("/openapi.json", token=None, expect=200).json()
        _SPEC[key] = [
            (method.upper(), path, op.get("parameters", []))
            for path, ops in spec["paths"].items()
            for method, op in ops.items()
        ]
    return _SPEC[key]


fuzz_text = st.text(min_size=1, max_size=40) | PLAUSIBLE.map(str) | st.just("x" * 300)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_routes_and_queries_never_cause_a_server_error(
    placed_api: Api, data: st.DataObject
) -> None:
    """Every operation of /openapi.json with random path parameters, query strings and
    bodies, as the admin or anonymously."""
    method, template, params = data.draw(st.sampled_from(_routes(placed_api)))
    path = template
    query: dict[str, str] = {}
    for param in params:
        if param["in"] == "path":
            value = quote(data.draw(fuzz_text), safe="")
            path = path.replace("{" + param["name"] + "}", value)
        elif param["in"] == "query" and data.draw(st.booleans()):
            query[param["name"]] = data.draw(fuzz_text | st.integers().map(str))
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["content"] = json.dumps(data.draw(json_values), allow_nan=True).encode()
        kwargs["headers"] = {"Content-Type": "application/json"}
    token = data.draw(st.sampled_from([placed_api.admin, None, "gcu_forged"]))
    response = placed_api.call(method, path, token=token, params=query, **kwargs)
    assert response.status_code < 500, (method, path, query, response.text)
    if response.status_code >= 400:
        error(response, response.status_code)
