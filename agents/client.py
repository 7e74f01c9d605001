"""The agent's side of the ``/v1/agent`` API.

Owns the :class:`ControlPlane` protocol the :class:`~agents.agent.Agent` depends on, the
:class:`HostCredential` it authenticates with, the errors it can raise, and
:class:`HttpControlPlane`, the httpx implementation: JSON bodies are the
:mod:`agents.protocol.v1` models; connection failures and 5xx answers are retried with
exponential backoff; 4xx answers raise at once with the server's error code, message and
request id.

Pass your own ``httpx.Client`` to talk to an in-process app (``fastapi.testclient.
TestClient(app)`` is one); otherwise one is built for ``base_url`` (over ``transport`` if
given). An injected client keeps its own timeouts (give it a read timeout longer than the
agent's ``poll_wait_s``); a client built here gets per-request timeouts that let each
long-poll outlive its wait.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from agents.protocol.v1 import (
    AssignmentList,
    Heartbeat,
    HeartbeatAck,
    RegisterRequest,
    RegisterResponse,
    StatusReport,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1/agent"
REQUEST_ID_HEADER = "X-Request-Id"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class HostCredential:
    """Who the agent is to the control plane (the result of registration)."""

    host_id: str
    credential: str
    datacentre: str = ""
    heartbeat_interval_s: float = 0.0

    def __repr__(self) -> str:  # never print the secret
        return f"HostCredential(host_id={self.host_id!r}, datacentre={self.datacentre!r})"


class ControlPlaneError(Exception):
    """A call to the control plane failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        details: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.request_id = request_id

    @property
    def temporary(self) -> bool:
        """Worth retrying later (the control plane was unreachable or failing)."""
        return False

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request {self.request_id}")
        return " | ".join(parts)


class ControlPlaneUnavailable(ControlPlaneError):
    """Unreachable, timing out or answering 5xx, even after the retries."""

    @property
    def temporary(self) -> bool:
        """Always worth retrying later."""
        return True


class ControlPlaneRejected(ControlPlaneError):
    """The control plane refused the request (4xx): retrying it unchanged won't help."""


class AuthenticationFailed(ControlPlaneRejected):
    """401/403: the bootstrap token or host credential is not (or no longer) valid."""


class ControlPlane(Protocol):
    """What the agent needs from the control plane (one method per agent endpoint)."""

    def register(self, request: RegisterRequest) -> RegisterResponse:
        """``POST /v1/agent/register``: trade the bootstrap token for a credential."""
        ...

    def heartbeat(self, credential: HostCredential, heartbeat: Heartbeat) -> HeartbeatAck:
        """``POST /v1/agent/hosts/{id}/heartbeat``."""
        ...

    def assignments(
        self, credential: HostCredential, *, generation: int, wait_s: float
    ) -> AssignmentList:
        """``GET /v1/agent/hosts/{id}/assignments``: at once if the host's generation differs
        from ``generation``, else after a change or ``wait_s`` seconds."""
        ...

    def report_status(
        self, credential: HostCredential, report: StatusReport
    ) -> AssignmentList | None:
        """``POST /v1/agent/hosts/{id}/status``; the host's assignments afterwards when the
        control plane sends them (the report changed something), else None."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for connection errors and 5xx answers."""

    attempts: int = 4
    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 5.0
    #: Fraction of each delay randomised (spreads thousands of agents apart).
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** (attempt - 1))
        return base * (1 - self.jitter + 2 * self.jitter * rng.random())


#: Status codes after which the request certainly had no effect (safe to resend anything).
_NOT_PROCESSED = frozenset({502, 503, 504})


class HttpControlPlane:
    """:class:`ControlPlane` over HTTP with httpx."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        user_agent: str = "govcloud-agent",
    ) -> None:
        if http_client is None:
            if not base_url:
                raise ValueError("HttpControlPlane needs base_url or http_client")
            http_client = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)
            self._owns_client = True
        elif transport is not None:
            raise ValueError("pass http_client or transport, not both")
        else:
            self._owns_client = False
        self._http = http_client
        self._timeout_s = timeout_s
        self._retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._user_agent = user_agent

    # -- endpoints --------------------------------------------------------------------

    def register(self, request: RegisterRequest) -> RegisterResponse:
        """Register the host; only resent when the first attempt surely did nothing."""
        response = self._call(
            "POST",
            f"{API_PREFIX}/register",
            body=request,
            idempotent=False,
            expect=(200, 201),
        )
        return self._parse(response, RegisterResponse)

    def heartbeat(self, credential: HostCredential, heartbeat: Heartbeat) -> HeartbeatAck:
        """Send one heartbeat."""
        response = self._call(
            "POST",
            f"{API_PREFIX}/hosts/{credential.host_id}/heartbeat",
            body=heartbeat,
            credential=credential,
            expect=(200,),
        )
        return self._parse(response, HeartbeatAck)

    def assignments(
        self, credential: HostCredential, *, generation: int, wait_s: float
    ) -> AssignmentList:
        """Long-poll for the host's assignments."""
        response = self._call(
            "GET",
            f"{API_PREFIX}/hosts/{credential.host_id}/assignments",
            params={"generation": str(generation), "wait": f"{max(0.0, wait_s):g}"},
            credential=credential,
            expect=(200,),
            read_timeout_s=max(0.0, wait_s) + self._timeout_s,
        )
        return self._parse(response, AssignmentList)

    def report_status(
        self, credential: HostCredential, report: StatusReport
    ) -> AssignmentList | None:
        """Report observed instance states; returns the assignments the control plane
        answers with when the report changed something (older control planes answer 204:
        None)."""
        response = self._call(
            "POST",
            f"{API_PREFIX}/hosts/{credential.host_id}/status",
            body=report,
            params={"assignments": "true"},
            credential=credential,
            expect=(200, 202, 204),
        )
        if response.status_code != 200 or not response.content:
            return None
        return self._parse(response, AssignmentList)

    def close(self) -> None:
        """Close the httpx client if this object created it."""
        if self._owns_client:
            self._http.close()

    # -- plumbing ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...],
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
        credential: HostCredential | None = None,
        idempotent: bool = True,
        read_timeout_s: float | None = None,
    ) -> httpx.Response:
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        extra: dict[str, Any] = {}
        if self._owns_client:
            extra["timeout"] = httpx.Timeout(
                self._timeout_s, read=read_timeout_s if read_timeout_s else self._timeout_s
            )
        if credential is not None:
            headers["Authorization"] = f"Bearer {credential.credential}"
        content = body.model_dump_json().encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        last: ControlPlaneUnavailable | None = None
        for attempt in range(1, self._retry.attempts + 1):
            request_id = f"agent-{uuid.uuid4()}"
            headers[REQUEST_ID_HEADER] = request_id
            try:
                response = self._http.request(
                    method, path, content=content, params=params, headers=headers, **extra
                )
            except httpx.TransportError as err:
                surely_unsent = isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)
                last = ControlPlaneUnavailable(
                    f"{method} {path}: cannot reach the control plane: {err!r}",
                    request_id=request_id,
                )
                if not (idempotent or surely_unsent):
                    raise last from err
            else:
                if response.status_code in expect:
                    return response
                error = self._error(method, path, response, request_id)
                if not isinstance(error, ControlPlaneUnavailable):
                    raise error
                last = error
                if not (idempotent or response.status_code in _NOT_PROCESSED):
                    raise error
            if attempt < self._retry.attempts:
                delay = self._retry.delay(attempt, self._rng)
                log.debug(
                    "%s %s failed (%s); retry %d in %.2f s", method, path, last, attempt, delay
                )
                self._sleep(delay)
        assert last is not None
        raise last

    @staticmethod
    def _error(
        method: str, path: str, response: httpx.Response, request_id: str
    ) -> ControlPlaneError:
        status = response.status_code
        code, message, details = "", "", {}
        rid = response.headers.get(REQUEST_ID_HEADER, request_id)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            code = str(payload.get("code", "") or "")
            message = str(payload.get("message", "") or "")
            raw_details = payload.get("details")
            details = raw_details if isinstance(raw_details, dict) else {}
            rid = str(payload.get("request_id", "") or rid)
        if not message:
            message = (response.text or response.reason_phrase or "").strip()[:200]
        text = f"{method} {path} failed: {message}" if message else f"{method} {path} failed"
        cls: type[ControlPlaneError]
        if status >= 500:
            cls = ControlPlaneUnavailable
        elif status in (401, 403):
            cls = AuthenticationFailed
        elif status >= 400:
            cls = ControlPlaneRejected
        else:
            cls = ControlPlaneError  # an unexpected 1xx/2xx/3xx
        return cls(text, status=status, code=code, details=details, request_id=rid)

    @staticmethod
    def _parse(response: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as err:
            raise ControlPlaneError(
                f"unexpected {model.__name__} from the control plane: {err}",
                status=response.status_code,
                request_id=response.headers.get(REQUEST_ID_HEADER, ""),
            ) from err
