"""(b) Side by side with OpenStack Placement, over HTTP, on identical inventory.

Both systems run as real HTTP services on SQLite on this machine, and the same client
code (:mod:`benchmarks.httpload`: one ``httpx`` connection per client thread, closed
loop) drives them, sequentially and with 8 concurrent clients:

- **govcloud**: a real ``govcloud-api`` process (uvicorn) over a database seeded with the
  benchmark fleet (``N`` hosts, 3 data centres); a decision is ``POST /v1/instances``,
  which answers 202 with the instance SCHEDULED on a host: snapshot, scheduler, quota
  charge, claim and commit, plus authentication and the audit record. No agent is needed.
- **Placement** (:mod:`benchmarks.placement_ref`): ``N`` resource providers with the same
  inventories, reservations and allocation ratios, one aggregate per data centre; a
  decision is Nova's ``GET /allocation_candidates`` then ``PUT /allocations/{consumer}``
  (409s retried like Nova).

The ratio row divides govcloud's decisions per second by Placement's for the same size
and concurrency. Placement is skipped (and the report says why) when its virtualenv has
not been built with ``scripts/placement-ref.sh``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import FLAVOR, IMAGE, PROJECT, Context, Result, Row, prepare_fleet
from benchmarks import placement_ref as ref
from benchmarks.httpload import Decide, Outcome, drive, summarise
from benchmarks.services import ADMIN_TOKEN, Service, govcloud_api

NAME = "versus"
CLIENTS: tuple[int, ...] = (1, 8)
#: gunicorn shape for Placement on SQLite (see the module docs of placement_ref).
PLACEMENT_WORKERS = int(os.environ.get("GOVCLOUD_BENCH_PLACEMENT_WORKERS", "2"))
PLACEMENT_THREADS = int(os.environ.get("GOVCLOUD_BENCH_PLACEMENT_THREADS", "1"))
WARMUP = 3
#: No agent heartbeats in this benchmark: keep the liveness loop (it runs, as in a real
#: deployment) from declaring the seeded hosts suspect or down.
NO_AGENTS_ENV = {
    "GOVCLOUD_HOST_SUSPECT_AFTER_S": "86400",
    "GOVCLOUD_HOST_DOWN_AFTER_S": "172800",
    "GOVCLOUD_HOST_FENCE_AFTER_S": "259200",  # must exceed the DOWN timeout
}


@dataclass(frozen=True)
class Plan:
    """How many decisions to measure per system and concurrency at one fleet size."""

    hosts: int
    govcloud: dict[int, int]
    placement: dict[int, int]
    #: No new decision starts after this many seconds of one measurement.
    budget_s: float


def plans(quick: bool) -> list[Plan]:
    """The sizes, request counts and time budgets of a run."""
    if quick:
        return [Plan(1000, {1: 60, 8: 80}, {1: 10, 8: 16}, 20.0)]
    return [
        Plan(1000, {1: 300, 8: 400}, {1: 60, 8: 80}, 60.0),
        Plan(10000, {1: 200, 8: 240}, {1: 20, 8: 32}, 75.0),
    ]


# -- govcloud's decision -------------------------------------------------------------------


def govcloud_decide(client: httpx.Client, index: int) -> Outcome:
    """``POST /v1/instances`` as the platform admin; ok when it answers SCHEDULED."""
    start = time.perf_counter()
    response = client.post(
        "/v1/instances",
        json={
            "name": f"vs-{index:06d}",
            "project": PROJECT,
            "flavor": FLAVOR.name,
            "image": IMAGE.name,
        },
    )
    elapsed = time.perf_counter() - start
    if response.status_code == 202 and response.json().get("state") == "SCHEDULED":
        return Outcome(elapsed, True)
    if response.status_code == 202:
        return Outcome(elapsed, False, error=f"202 {response.json().get('state')}")
    server_errors = 1 if response.status_code >= 500 else 0
    return Outcome(
        elapsed, False, error=f"POST {response.status_code}", server_errors=server_errors
    )


def govcloud_client(service: Service) -> httpx.Client:
    """An admin client of the govcloud API."""
    return httpx.Client(
        base_url=service.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=120.0,
    )


# -- one system at one size ----------------------------------------------------------------


def measure_http(
    system: str,
    make_client: Callable[[], httpx.Client],
    decide: Decide,
    *,
    hosts: int,
    counts: dict[int, int],
    warmup: int = WARMUP,
    budget_s: float | None = None,
) -> list[Row]:
    """Warm up, then each concurrency in ``counts`` (clients -> decisions) in turn, each
    stopping early when ``budget_s`` runs out."""
    drive(make_client, decide, requests=warmup, clients=1, first_index=10_000_000)
    rows: list[Row] = []
    index = 0
    for clients, requests in sorted(counts.items()):
        outcomes, wall = drive(
            make_client,
            decide,
            requests=requests,
            clients=clients,
            first_index=index,
            budget_s=budget_s,
        )
        index += requests
        head: Row = {"system": system, "hosts": hosts, "clients": clients}
        rows.append(head | summarise(outcomes, wall))
    return rows


def measure_govcloud(
    url: str,
    workdir: Path,
    *,
    hosts: int,
    counts: dict[int, int],
    budget_s: float | None = None,
) -> list[Row]:
    """govcloud over HTTP on the seeded database at ``url``."""
    with govcloud_api(url, workdir, env=NO_AGENTS_ENV) as service:
        return measure_http(
            "govcloud",
            lambda: govcloud_client(service),
            govcloud_decide,
            hosts=hosts,
            counts=counts,
            budget_s=budget_s,
        )


def measure_placement(
    venv: Path,
    workdir: Path,
    *,
    hosts: int,
    counts: dict[int, int],
    progress: Callable[[str], None],
    budget_s: float | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    """Placement over HTTP on a copy of the loaded database; also the loading record."""
    database, record = ref.loaded_database(venv, workdir, hosts)
    if not record["cached"]:
        progress(f"versus: loaded {hosts} Placement providers in {record['load_s']} s")
    with ref.placement_service(
        venv, workdir, database, workers=PLACEMENT_WORKERS, threads=PLACEMENT_THREADS
    ) as service:
        rows = measure_http(
            "placement",
            lambda: ref.client_for(service),
            ref.decide,
            hosts=hosts,
            counts=counts,
            budget_s=budget_s,
        )
    database.unlink(missing_ok=True)
    return rows, record


def ratio_rows(rows: Sequence[Row]) -> list[Row]:
    """One row per (hosts, clients) with both throughputs and govcloud's speed-up."""
    index = {(r["system"], r["hosts"], r["clients"]): r for r in rows}
    out: list[Row] = []
    for (system, hosts, clients), row in index.items():
        if system != "govcloud":
            continue
        other = index.get(("placement", hosts, clients))
        if other is None:
            continue
        gc, pl = row["decisions_per_s"], other["decisions_per_s"]
        p99_gc, p99_pl = row["p99_ms"], other["p99_ms"]
        out.append(
            {
                "system": "ratio govcloud/placement",
                "hosts": hosts,
                "clients": clients,
                "decisions_per_s": round(float(gc) / float(pl), 1)
                if isinstance(gc, float) and isinstance(pl, float) and pl > 0
                else None,
                "p50_ms": _ratio(other["p50_ms"], row["p50_ms"]),
                "p99_ms": _ratio(p99_pl, p99_gc),
            }
        )
    return out


def _ratio(slow: Any, fast: Any) -> float | None:
    """How many times ``fast`` is below ``slow`` (latencies)."""
    if isinstance(slow, float) and isinstance(fast, float) and fast > 0:
        return round(slow / fast, 1)
    return None


COLUMNS = [
    "system",
    "hosts",
    "clients",
    "requests",
    "decisions_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "get_p50_ms",
    "put_p50_ms",
    "failed",
    "conflicts_409",
    "claims_with_409",
    "server_errors_5xx",
]


def run(context: Context) -> Result:
    """Every size: govcloud, then Placement (when built), then the ratios."""
    result = Result(
        name=NAME,
        title="Side by side with OpenStack Placement (HTTP, SQLite, same inventory)",
        description=(
            "Decisions over HTTP against real services on this machine, same client code, "
            "SQLite for both. govcloud: `POST /v1/instances` to a `govcloud-api` process "
            "(uvicorn, one process) answering SCHEDULED. Placement: Nova's path "
            f"`GET /allocation_candidates?resources={ref.resources_query()}&limit="
            f"{ref.NOVA_LIMIT}&root_required=!COMPUTE_STATUS_DISABLED` then "
            "`PUT /allocations/{consumer}` with the first candidate (409 "
            "`placement.concurrent_update` retried up to "
            f"{ref.CONCURRENT_UPDATE_RETRIES} times, other 409s and 5xx move to the next "
            f"candidate), microversion {ref.MICROVERSION}, noauth2, gunicorn "
            f"{PLACEMENT_WORKERS} worker(s) x {PLACEMENT_THREADS} thread(s), SQLite in WAL "
            "mode. Same hosts/providers: 32 VCPU (ratio 4.0), 65,536 MB RAM (512 reserved, "
            "ratio 1.0), 4,000 GB disk, spread over 3 data centres (aggregates); every "
            "request is 1 VCPU / 2,048 MB / 20 GB. `clients` 1 = sequential, 8 = eight "
            "closed-loop client threads. The *ratio* rows are govcloud/Placement for "
            "decisions/s and Placement/govcloud for latencies."
        ),
        columns=COLUMNS,
    )
    try:
        venv: Path | None = ref.check_available()
    except ref.ReferenceUnavailable as err:
        venv = None
        result.notes.append(f"Placement not measured: {err}.")
    if venv is not None:
        result.notes.append(f"openstack-placement {ref.placement_version(venv)} from PyPI.")
    rows: list[Row] = []
    for plan in plans(context.quick):

        def build(url: str, hosts: int = plan.hosts) -> None:
            prepare_fleet(url, hosts)

        url = context.databases.seeded("sqlite", f"roomy_{plan.hosts}", build)
        rows += measure_govcloud(
            url, context.workdir, hosts=plan.hosts, counts=plan.govcloud, budget_s=plan.budget_s
        )
        context.progress(f"versus govcloud hosts={plan.hosts}: {_brief(rows[-2:])}")
        if venv is not None:
            placement_rows, record = measure_placement(
                venv,
                context.workdir,
                hosts=plan.hosts,
                counts=plan.placement,
                progress=context.progress,
                budget_s=plan.budget_s,
            )
            rows += placement_rows
            context.progress(f"versus placement hosts={plan.hosts}: {_brief(placement_rows)}")
            when = "in this run" if not record["cached"] else f"at {record.get('loaded_at')}"
            result.notes.append(
                f"Loading {plan.hosts:,} providers into Placement over HTTP (3 calls each, "
                f"{record.get('clients', 2)} clients, one server thread) took "
                f"{record.get('load_s')} s ({when}"
                + (f"; {record['note']}" if record.get("note") else "")
                + "); the loaded SQLite file is cached under .bench/placement-data/."
            )
    result.rows = rows + ratio_rows(rows)
    result.notes += [
        "Each measurement stops starting new decisions after its time budget (60 s at "
        "1,000 hosts, 75 s at 10,000; 20 s in quick mode), so `requests` is what fitted.",
        "Every figure includes the HTTP round trips from a client in another process; both "
        "servers share the machine's 2 vCPUs with the client.",
        "Placement is served by gunicorn with one sync worker process per vCPU (2), as "
        "a WSGI deployment would be. On SQLite, concurrent writers from several workers "
        'sometimes get 500 "database is locked" (counted in `server_errors_5xx`; the '
        "decision then moves to the next candidate, as Nova would). With threads per "
        "worker (GOVCLOUD_BENCH_PLACEMENT_THREADS) those errors multiply; with a single "
        "worker and thread there are none, but 8 clients get less throughput.",
    ]
    return result


def _brief(rows: Sequence[Row]) -> str:
    return "; ".join(
        f"{r['clients']} client(s) {r['decisions_per_s']}/s p99 {r['p99_ms']} ms "
        f"failed {r['failed']}"
        for r in rows
    )
