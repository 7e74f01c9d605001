"""An in-process control plane for functional tests: the real app and store, a fake clock,
and short-hands for seeding data and for playing a host agent over the agent endpoints.

``Api(url)`` opens (and migrates) the store at ``url`` and wraps ``create_app`` in a
``TestClient`` that returns 500s as responses (so tests can assert there are none).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.settings import Settings
from controlplane.store import Store, open_store

ADMIN_TOKEN = "test-admin-token-0123456789"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

#: What the standard seed creates: two ministries with an agency and a project each.
ORG_TREE: tuple[tuple[str, str], ...] = (
    ("moi", "gov"),
    ("nfa", "moi"),
    ("disaster", "nfa"),
    ("motc", "gov"),
    ("thb", "motc"),
    ("traffic", "thb"),
)
FLAVORS: dict[str, tuple[int, int, int]] = {
    "m1.tiny": (1, 512, 1),
    "m1.small": (1, 1024, 10),
    "m1.medium": (2, 4096, 40),
    "m1.large": (4, 8192, 80),
}


class FakeClock:
    """A thread-safe clock that ticks one millisecond per reading (so rows created one
    after another have distinct, ordered timestamps) and can be moved forward."""

    def __init__(self, start: datetime = START, tick: timedelta = timedelta(milliseconds=1)):
        self._now = start
        self._tick = tick
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += self._tick
            return self._now

    def advance(self, delta: timedelta) -> None:
        """Jump forward (e.g. past a token's expiry)."""
        with self._lock:
            self._now += delta


class ApiError(AssertionError):
    """A response had an unexpected status."""


def check(response: httpx.Response, expect: int | None) -> httpx.Response:
    """Raise a readable assertion unless ``response`` has status ``expect``."""
    if expect is not None and response.status_code != expect:
        raise ApiError(
            f"{response.request.method} {response.request.url.path}: expected {expect}, "
            f"got {response.status_code}: {response.text[:2000]}"
        )
    return response


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is the standard error body with ``status`` (and ``code``);
    returns the body. The body's request id must match the ``X-Request-Id`` header."""
    check(response, status)
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert isinstance(body["details"], dict), body
    assert body["request_id"], body
    assert body["request_id"] == response.headers["x-request-id"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def fields_named(body: dict[str, Any]) -> set[str]:
    """The fields a validation error body names."""
    return {problem["field"] for problem in body["details"].get("errors", [])}


@dataclass
class Agent:
    """A host agent simulated over the real ``/v1/agent`` endpoints."""

    api: Api
    host_id: str
    name: str
    credential: str
    datacentre: str

    @property
    def headers(self) -> dict[str, str]:
        """The agent's bearer credential."""
        return {"Authorization": f"Bearer {self.credential}"}

    def assignments(self, generation: int = -1) -> dict[str, Any]:
        """The host's assignment list (no long-poll wait)."""
        response = self.api.client.get(
            f"/v1/agent/hosts/{self.host_id}/assignments",
            params={"generation": generation, "wait": 0},
            headers=self.headers,
        )
        body: dict[str, Any] = check(response, 200).json()
        return body

    def report(self, *statuses: dict[str, Any], expect: int | None = 204) -> httpx.Response:
        """Post raw status entries (``{"instance_id", "state", ...}``)."""
        return check(
            self.api.client.post(
                f"/v1/agent/hosts/{self.host_id}/status",
                json={"instances": list(statuses)},
                headers=self.headers,
            ),
            expect,
        )

    def status(
        self, instance_id: str, state: str, *, reboot_seq: int = 0, message: str = ""
    ) -> httpx.Response:
        """Report one instance's observed state."""
        return self.report(
            {
                "instance_id": instance_id,
                "state": state,
                "reboot_seq": reboot_seq,
                "message": message,
            }
        )

    def converge(self) -> list[dict[str, Any]]:
        """Behave like a healthy agent: carry out every assignment and report the result.

        running -> ``running`` (applying the latest reboot), stopped -> ``stopped`` (with
        the assigned sizes: a resize is applied), deleted -> ``absent``. Returns the
        assignments acted on.
        """
        assigned = self.assignments()["assignments"]
        observed = {"running": "running", "stopped": "stopped", "deleted": "absent"}
        statuses = [
            {
                "instance_id": a["instance_id"],
                "state": observed[a["desired"]],
                "reboot_seq": a["reboot_seq"],
            }
            | ({"vcpus": a["vcpus"], "ram_mib": a["ram_mib"]} if a["desired"] != "deleted" else {})
            for a in assigned
        ]
        if statuses:
            self.report(*statuses)
        result: list[dict[str, Any]] = assigned
        return result

    def heartbeat(
        self, vcpus: int, ram_mib: int, disk_gib: int, expect: int | None = 200
    ) -> httpx.Response:
        """Send a heartbeat with the host's capacity."""
        return check(
            self.api.client.post(
                f"/v1/agent/hosts/{self.host_id}/heartbeat",
                json={"capacity": {"vcpus": vcpus, "ram_mib": ram_mib, "disk_gib": disk_gib}},
                headers=self.headers,
            ),
            expect,
        )


class Api:
    """One control-plane replica in-process: ``store``, ``app``, ``client`` and helpers."""

    def __init__(
        self,
        url: str,
        *,
        clock: FakeClock | None = None,
        run_loops: bool = False,
        migrate: bool = True,
        **settings: Any,
    ) -> None:
        self.url = url
        self.clock = clock or FakeClock()
        self.store: Store = open_store(url, clock=self.clock, migrate=migrate)
        self.settings = Settings(
            database_url=url,
            admin_token=ADMIN_TOKEN,
            run_loops=run_loops,
            **settings,
        )
        self.app = create_app(self.settings, self.store)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.admin = ADMIN_TOKEN
        self._entered = run_loops
        if run_loops:  # run the lifespan, which starts the pending loop
            self.client.__enter__()

    def close(self) -> None:
        """Stop the app's loops (if started) and release database connections."""
        if self._entered:
            self.client.__exit__(None, None, None)
        self.client.close()
        self.store.close()

    # -- raw calls ----------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_TOKEN,
        expect: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request as ``token`` (None: unauthenticated); asserts ``expect`` if given."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return check(self.client.request(method, path, headers=headers, **kwargs), expect)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``."""
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST ``path``."""
        return self.call("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """PATCH ``path``."""
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """DELETE ``path``."""
        return self.call("DELETE", path, **kwargs)

    # -- seeding ------------------------------------------------------------------------

    def create_dc(self, code: str = "tpe-1", name: str = "Taipei 1") -> dict[str, Any]:
        """A data centre."""
        body: dict[str, Any] = self.post(
            "/v1/datacentres", json={"code": code, "name": name}, expect=201
        ).json()
        return body

    def create_flavor(
        self, name: str, vcpus: int, ram_mib: int, disk_gib: int = 1
    ) -> dict[str, Any]:
        """A flavor."""
        body: dict[str, Any] = self.post(
            "/v1/flavors",
            json={"name": name, "vcpus": vcpus, "ram_mib": ram_mib, "disk_gib": disk_gib},
            expect=201,
        ).json()
        return body

    def create_image(self, name: str = "cirros", **fields: Any) -> dict[str, Any]:
        """A qcow2 image (override any field)."""
        payload = {"name": name, "format": "qcow2", "path": f"/var/lib/govcloud/{name}.qcow2"}
        body: dict[str, Any] = self.post("/v1/images", json=payload | fields, expect=201).json()
        return body

    def create_org(self, code: str, parent: str, name: str | None = None) -> dict[str, Any]:
        """An organisation under ``parent`` (its kind follows from the parent)."""
        body: dict[str, Any] = self.post(
            "/v1/orgs",
            json={"code": code, "name": name or code.upper(), "parent": parent},
            expect=201,
        ).json()
        return body

    def create_user(self, name: str, role: str, organisation: str) -> str:
        """A user; returns its bearer token."""
        body = self.post(
            "/v1/users",
            json={"name": name, "role": role, "organisation": organisation},
            expect=201,
        ).json()
        token: str = body["token"]
        return token

    def seed(self, *, dc: str = "tpe-1") -> None:
        """The standard catalogue: one data centre, the FLAVORS, image ``cirros`` and the
        ORG_TREE (projects ``disaster`` under moi/nfa and ``traffic`` under motc/thb)."""
        self.create_dc(dc)
        for flavor, (vcpus, ram, disk) in FLAVORS.items():
            self.create_flavor(flavor, vcpus, ram, disk)
        self.create_image("cirros")
        for code, parent in ORG_TREE:
            self.create_org(code, parent)

    def bootstrap_token(self, dc: str = "tpe-1", ttl_hours: float = 24.0) -> str:
        """A one-time host enrolment token."""
        token: str = self.post(
            "/v1/hosts/bootstrap-tokens",
            json={"datacentre": dc, "ttl_hours": ttl_hours},
            expect=201,
        ).json()["token"]
        return token

    def register_host(
        self,
        name: str,
        *,
        dc: str = "tpe-1",
        vcpus: int = 16,
        ram_mib: int = 32768,
        disk_gib: int = 500,
        traits: Iterable[str] = (),
        token: str | None = None,
    ) -> Agent:
        """Issue a bootstrap token and register a host with it, as its agent would."""
        response = self.client.post(
            "/v1/agent/register",
            json={
                "bootstrap_token": token or self.bootstrap_token(dc),
                "name": name,
                "capacity": {"vcpus": vcpus, "ram_mib": ram_mib, "disk_gib": disk_gib},
                "traits": list(traits),
                "libvirt_uri": "test:///default",
                "agent_version": "test",
            },
        )
        body = check(response, 201).json()
        return Agent(
            api=self,
            host_id=body["host_id"],
            name=name,
            credential=body["credential"],
            datacentre=body["datacentre"],
        )

    # -- instances ----------------------------------------------------------------------

    def create_instance(
        self,
        name: str,
        project: str = "disaster",
        flavor: str = "m1.small",
        image: str = "cirros",
        *,
        datacentre: str | None = None,
        token: str | None = ADMIN_TOKEN,
        expect: int | None = 202,
    ) -> dict[str, Any]:
        """POST /v1/instances; returns the body."""
        payload: dict[str, Any] = {
            "name": name,
            "project": project,
            "flavor": flavor,
            "image": image,
        }
        if datacentre is not None:
            payload["datacentre"] = datacentre
        body: dict[str, Any] = self.post(
            "/v1/instances", json=payload, token=token, expect=expect
        ).json()
        return body

    def instance(self, instance_id: str, token: str | None = ADMIN_TOKEN) -> dict[str, Any]:
        """GET one instance (must be visible)."""
        body: dict[str, Any] = self.get(
            f"/v1/instances/{instance_id}", token=token, expect=200
        ).json()
        return body

    def instances(self, token: str | None = ADMIN_TOKEN, **params: Any) -> list[dict[str, Any]]:
        """Every instance visible to ``token`` matching ``params``, following pages."""
        items: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            query = dict(params) | ({"marker": marker} if marker else {})
            page = self.get("/v1/instances", token=token, params=query, expect=200).json()
            items.extend(page["items"])
            marker = page["next_marker"]
            if marker is None:
                return items

    def act(
        self, instance_id: str, action: str, *, token: str | None = ADMIN_TOKEN, expect: int = 202
    ) -> dict[str, Any]:
        """start / stop / reboot / delete."""
        if action == "delete":
            response = self.delete(f"/v1/instances/{instance_id}", token=token, expect=expect)
        else:
            response = self.post(
                f"/v1/instances/{instance_id}/{action}", token=token, expect=expect
            )
        body: dict[str, Any] = response.json()
        return body

    def place_pending(self) -> int:
        """One pass of this replica's pending-placement loop."""
        placed: int = self.app.state.pending.run_once()
        return placed

    def audit(self, token: str | None = ADMIN_TOKEN, **params: Any) -> list[dict[str, Any]]:
        """The audit events visible to ``token``, newest first."""
        body: list[dict[str, Any]] = self.get(
            "/v1/audit", token=token, params={"limit": 1000} | params, expect=200
        ).json()
        return body

    def hosts(self) -> list[dict[str, Any]]:
        """Every host (as admin)."""
        body: list[dict[str, Any]] = self.get("/v1/hosts", expect=200).json()
        return body
