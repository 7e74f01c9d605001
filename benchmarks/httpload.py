"""Closed-loop load over HTTP: N client threads, each sending one decision after another.

Owns what the HTTP benchmarks share, whatever the server: :class:`Outcome` (one decision's
latency and result), :func:`closed_loop` (N threads each taking the next request when done,
optionally within a time budget), :func:`drive` (the same over HTTP, one connection per
thread) and :func:`summarise` (decisions per second,
latency percentiles, failures, 409 conflicts). The decision itself (``POST /v1/instances``
for govcloud, ``GET /allocation_candidates`` + ``PUT /allocations`` for Placement) is a
callable given by the caller; a failed decision is an outcome, never an exception.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx

from benchmarks import Row, latency_ms

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """One decision as a client saw it."""

    latency_s: float
    ok: bool
    #: Claims answered 409 before the decision succeeded or gave up.
    conflicts: int = 0
    #: Why it failed (status and error code), empty when ``ok``.
    error: str = ""
    #: Server errors (5xx) met on the way (the decision moved on to another candidate).
    server_errors: int = 0
    #: Named parts of the latency (e.g. ``get``, ``put``) in seconds.
    parts: tuple[tuple[str, float], ...] = ()


#: A decision: given a client (one per thread) and the request's index, do it.
Decide = Callable[[httpx.Client, int], Outcome]


def closed_loop(
    work: Callable[[int], T],
    *,
    count: int,
    workers: int,
    first_index: int = 0,
    budget_s: float | None = None,
) -> tuple[list[T], float]:
    """Call ``work(i)`` for ``i`` in ``first_index .. first_index + count - 1`` from
    ``workers`` threads (1: in this thread), each taking the next index when done with
    its last. With ``budget_s``, no new call starts after that many seconds (the run then
    reports fewer results). Returns the results in index order and the wall time."""
    results: dict[int, T] = {}
    lock = threading.Lock()
    counter = iter(range(first_index, first_index + count))
    start = time.perf_counter()
    deadline = None if budget_s is None else start + budget_s

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None or (deadline is not None and time.perf_counter() > deadline):
                return
            result = work(index)
            with lock:
                results[index] = result

    if workers == 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, name=f"bench-loop-{n}") for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - start
    return [results[i] for i in sorted(results)], wall


def drive(
    make_client: Callable[[], httpx.Client],
    decide: Decide,
    *,
    requests: int,
    clients: int,
    first_index: int = 0,
    budget_s: float | None = None,
) -> tuple[list[Outcome], float]:
    """Run decisions ``first_index .. first_index + requests - 1`` from ``clients`` threads
    (1: sequentially), each thread with its own client (see :func:`closed_loop` for
    ``budget_s``); returns the outcomes in index order and the wall time."""
    local = threading.local()
    made: list[httpx.Client] = []
    made_lock = threading.Lock()

    def one(index: int) -> Outcome:
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client()
            with made_lock:
                made.append(client)
        start = time.perf_counter()
        try:
            return decide(client, index)
        except httpx.HTTPError as err:  # a transport failure is a failed decision
            return Outcome(time.perf_counter() - start, False, error=type(err).__name__)

    try:
        return closed_loop(
            one, count=requests, workers=clients, first_index=first_index, budget_s=budget_s
        )
    finally:
        for client in made:
            client.close()


def summarise(outcomes: Sequence[Outcome], wall_s: float) -> Row:
    """Throughput, latency of the successful decisions, failures and conflicts."""
    good = [o for o in outcomes if o.ok]
    errors = Counter(o.error for o in outcomes if not o.ok)
    row: Row = {
        "requests": len(outcomes),
        "ok": len(good),
        "failed": len(outcomes) - len(good),
        "failures": ", ".join(f"{name} x{n}" for name, n in sorted(errors.items())),
        "conflicts_409": sum(o.conflicts for o in outcomes),
        "claims_with_409": sum(1 for o in outcomes if o.conflicts),
        "server_errors_5xx": sum(o.server_errors for o in outcomes),
        "wall_s": round(wall_s, 3),
        "decisions_per_s": round(len(good) / wall_s, 2) if wall_s > 0 else None,
        **latency_ms([o.latency_s for o in good]),
    }
    names = sorted({name for o in good for name, _ in o.parts})
    for name in names:
        samples = [s for o in good for part, s in o.parts if part == name]
        row |= {k: v for k, v in latency_ms(samples, prefix=f"{name}_").items() if "p50" in k}
    return row
