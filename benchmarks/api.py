"""(b) API: latency of ``POST /v1/instances`` through the in-process app.

The real FastAPI app over the real store, driven through Starlette's ``TestClient`` (no
network): authentication, validation, the audit record, placement and the response model
are all in the figure. Requests are sequential, as one client would send them.
"""

from __future__ import annotations

import time

from benchmarks import (
    FLAVOR,
    IMAGE,
    PROJECT,
    Context,
    Result,
    Row,
    backend_of,
    latency_ms,
    prepare_fleet,
)
from tests.api_helper import Api

NAME = "api"
HOSTS = 100
WARMUP = 5


def measure_api(url: str, *, requests: int, warmup: int = WARMUP) -> Row:
    """Send ``requests`` create-instance calls (after ``warmup``) to an in-process app over
    the seeded database at ``url``; returns the figures."""
    api = Api(url, run_loops=False, migrate=False)
    try:
        hosts = len(api.store.hosts.list())
        samples: list[float] = []
        errors = 0
        for i in range(-warmup, requests):
            payload = {
                "name": f"api-{i + warmup:05d}",
                "project": PROJECT,
                "flavor": FLAVOR.name,
                "image": IMAGE.name,
            }
            start = time.perf_counter()
            response = api.call("POST", "/v1/instances", json=payload)
            elapsed = time.perf_counter() - start
            if i < 0:
                continue
            if response.status_code == 202 and response.json()["state"] == "SCHEDULED":
                samples.append(elapsed)
            else:
                errors += 1
        return {
            "backend": backend_of(url),
            "hosts": hosts,
            "requests": requests,
            "errors": errors,
            "requests_per_s": round(len(samples) / sum(samples), 1) if samples else None,
            **latency_ms(samples),
        }
    finally:
        api.close()


def run(context: Context) -> Result:
    """Both backends, one fleet of 100 roomy hosts."""
    requests = 50 if context.quick else 300
    result = Result(
        name=NAME,
        title="API create-instance latency (in-process app, TestClient)",
        description=(
            f"`POST /v1/instances` as the platform admin through the real app in-process "
            f"(Starlette TestClient, no sockets), {HOSTS} roomy hosts in 3 data centres, "
            "sequential requests. Includes authentication, validation, placement with "
            "commit, the audit record and serialising the response."
        ),
        columns=[
            "backend",
            "hosts",
            "requests",
            "requests_per_s",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "errors",
        ],
    )
    for backend in context.databases.backends:

        def build(url: str) -> None:
            prepare_fleet(url, HOSTS)

        url = context.databases.seeded(backend, f"roomy_{HOSTS}", build)
        row = measure_api(url, requests=requests)
        result.rows.append(row)
        context.progress(
            f"api {backend}: p50 {row['p50_ms']} ms p95 {row['p95_ms']} ms errors {row['errors']}"
        )
    result.notes.append(
        "The difference to the placement benchmark's 100-host sequential p50 is the cost of "
        "the HTTP layer in-process (routing, auth, pydantic, audit); a real deployment adds "
        "the network and the ASGI server on top."
    )
    return result
