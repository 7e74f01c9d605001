"""The agent's HTTP client over httpx's in-memory MockTransport (requests are real httpx
requests; the handler plays the server)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from agents.client import (
    AuthenticationFailed,
    ControlPlaneError,
    ControlPlaneRejected,
    ControlPlaneUnavailable,
    HostCredential,
    HttpControlPlane,
    RetryPolicy,
)
from agents.protocol.v1 import Heartbeat, RegisterRequest, StatusReport
from controlplane.domain.resources import Resources

CRED = HostCredential(host_id="h-1", credential="gch-secret")
LISTING = {"host_id": "h-1", "generation": 7, "assignments": []}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, sleeps: list[float] | None = None) -> HttpControlPlane:
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://cp.test")
    slept = sleeps if sleeps is not None else []
    return HttpControlPlane(http_client=http, sleep=slept.append, retry=RetryPolicy(attempts=3))


def register_request() -> RegisterRequest:
    return RegisterRequest(
        bootstrap_token="t" * 20,
        name="host-1",
        capacity=Resources(vcpus=4, ram_mib=8192, disk_gib=100),
        libvirt_uri="test:///tmp/host.xml",
    )


def test_register_sends_the_token_in_the_body_without_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={
                "host_id": "h-1",
                "datacentre": "tpe-1",
                "credential": "gch-x",
                "heartbeat_interval_s": 5,
            },
        )

    response = client(handler).register(register_request())
    assert response.host_id == "h-1"
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/v1/agent/register")
    assert "authorization" not in request.headers
    assert json.loads(request.content)["bootstrap_token"] == "t" * 20


def test_host_calls_authenticate_and_use_the_host_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/heartbeat"):
            return httpx.Response(200, json={"host_state": "active", "heartbeat_interval_s": 10})
        if request.url.path.endswith("/assignments"):
            return httpx.Response(200, json=LISTING)
        return httpx.Response(204)

    cp = client(handler)
    cp.heartbeat(CRED, Heartbeat(capacity=Resources(vcpus=1)))
    listing = cp.assignments(CRED, generation=-1, wait_s=30)
    cp.report_status(CRED, StatusReport())
    assert listing.generation == 7
    assert [r.url.path for r in seen] == [
        "/v1/agent/hosts/h-1/heartbeat",
        "/v1/agent/hosts/h-1/assignments",
        "/v1/agent/hosts/h-1/status",
    ]
    assert {r.headers["authorization"] for r in seen} == {"Bearer gch-secret"}
    poll = seen[1]
    assert dict(poll.url.params) == {"generation": "-1", "wait": "30"}
    assert all(r.headers["x-request-id"].startswith("agent-") for r in seen)


def test_an_own_client_lets_the_long_poll_outlive_its_wait() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=LISTING)

    cp = HttpControlPlane("http://cp.test", timeout_s=10, transport=httpx.MockTransport(handler))
    cp.assignments(CRED, generation=3, wait_s=30)
    cp.report_status(CRED, StatusReport())
    assert seen[0].extensions["timeout"]["read"] == 40
    assert seen[1].extensions["timeout"]["read"] == 10
    cp.close()


def test_server_errors_and_lost_connections_are_retried_with_backoff() -> None:
    answers: Iterator[str | int] = iter(["connect", 503, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer == "connect":
            raise httpx.ConnectError("refused", request=request)
        if answer == 200:
            return httpx.Response(200, json=LISTING)
        assert isinstance(answer, int)
        return httpx.Response(answer, json={"code": "internal", "message": "boom"})

    sleeps: list[float] = []
    cp = HttpControlPlane(
        http_client=httpx.Client(transport=httpx.MockTransport(handler), base_url="http://cp"),
        sleep=sleeps.append,
        retry=RetryPolicy(attempts=4, initial_s=1.0, jitter=0.0),
    )
    assert cp.assignments(CRED, generation=1, wait_s=0).generation == 7
    assert sleeps == [1.0, 2.0, 4.0]


def test_persistent_failure_raises_unavailable() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(ControlPlaneUnavailable) as caught:
        client(handler).heartbeat(CRED, Heartbeat(capacity=Resources()))
    assert len(calls) == 3
    assert caught.value.temporary
    assert caught.value.status == 502


def test_client_errors_are_raised_at_once_with_the_servers_details() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            409,
            json={
                "code": "host.exists",
                "message": "host 'host-1' already exists",
                "details": {"id": "host-1"},
                "request_id": "req-42",
            },
        )

    with pytest.raises(ControlPlaneRejected) as caught:
        client(handler).register(register_request())
    err = caught.value
    assert (err.status, err.code, err.request_id) == (409, "host.exists", "req-42")
    assert err.details == {"id": "host-1"}
    assert "already exists" in str(err)
    assert "req-42" in str(err)
    assert not err.temporary
    assert len(calls) == 1


def test_bad_credentials_are_authentication_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": "auth.unauthenticated", "message": "no"})

    with pytest.raises(AuthenticationFailed):
        client(handler).assignments(CRED, generation=0, wait_s=0)


def test_register_is_not_resent_after_an_ambiguous_failure() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)  # may have been processed

    with pytest.raises(ControlPlaneUnavailable):
        client(handler).register(register_request())
    assert len(calls) == 1


def test_malformed_answers_are_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"generation": "many"})

    with pytest.raises(ControlPlaneError, match="AssignmentList"):
        client(handler).assignments(CRED, generation=0, wait_s=0)


def test_credential_repr_hides_the_secret() -> None:
    assert "gch-secret" not in repr(CRED)
