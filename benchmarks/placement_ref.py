"""The reference: OpenStack Placement as a real HTTP service, loaded and driven like Nova.

Owns everything about the reference side of :mod:`benchmarks.versus`:

- finding its virtualenv (``scripts/placement-ref.sh`` builds ``.bench/placement-venv``;
  Placement pins its own oslo.* libraries, so it never goes into ``.venv``);
- running it: ``placement.conf`` with ``[api] auth_strategy = noauth2`` and a SQLite
  ``[placement_database]``, ``placement-manage db sync``, then gunicorn serving
  ``placement.wsgi.api:application`` with several workers;
- the inventory, identical to the govcloud benchmark fleet: one resource provider per host
  with VCPU / MEMORY_MB / DISK_GB inventories carrying the same reservations and allocation
  ratios as govcloud's defaults (:mod:`controlplane.domain.host`), in one aggregate per
  data centre; loading is slow over HTTP (three calls per provider), so a loaded database
  is cached under ``.bench/placement-data/`` and copied for every measurement;
- Nova's per-decision path: ``GET /allocation_candidates?resources=...&limit=N`` then
  ``PUT /allocations/{consumer}`` with the first candidate; a 409
  ``placement.concurrent_update`` is retried on the same candidate (Nova's report client
  retries it), any other 409 moves to the next candidate (Nova's alternates).

The request/response handling (:func:`inventories`, :func:`candidate_params`,
:func:`allocation_requests`, :func:`allocation_payload`) is pure and tested without the
service; the service itself is only installed for benchmark runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import DATACENTRES, FLAVOR, ROOMY_HOST
from benchmarks.httpload import Outcome
from benchmarks.services import Service, ServiceFailed, free_port, spawn
from controlplane.domain.flavor import Flavor
from controlplane.domain.host import DEFAULT_RESERVED, AllocationRatios
from controlplane.domain.resources import Resources

REPO = Path(__file__).resolve().parents[1]
VENV_ENV = "GOVCLOUD_PLACEMENT_VENV"
DEFAULT_VENV = REPO / ".bench" / "placement-venv"
CACHE_DIR = REPO / ".bench" / "placement-data"
#: Microversion of every request: 1.35 brings ``root_required`` (Nova's
#: ``!COMPUTE_STATUS_DISABLED`` filter), 1.28+ needs ``consumer_generation`` on PUT.
MICROVERSION = "1.36"
HEADERS = {
    "X-Auth-Token": "admin",  # noauth2: any token, "admin" gets the admin role
    "OpenStack-API-Version": f"placement {MICROVERSION}",
    "Accept": "application/json",
}
#: Nova's ``[scheduler] max_placement_results`` default.
NOVA_LIMIT = 1000
#: Nova's report client retries a claim that hit a generation conflict this many times.
CONCURRENT_UPDATE_RETRIES = 3
CONCURRENT_UPDATE = "placement.concurrent_update"
PROJECT_ID = "5b7f8c9e0d1a4b2c8e3f4a5b6c7d8e9f"  # the benchmark's ministry project
USER_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
_NAMESPACE = uuid.UUID("6c1f0a52-3c1e-4b1d-9e3a-0c0ffee00b5e")


class ReferenceUnavailable(RuntimeError):
    """The Placement virtualenv is missing (run ``scripts/placement-ref.sh``)."""


# -- pure: inventory and Nova's requests ---------------------------------------------------


def provider_uuid(index: int) -> str:
    """Stable UUID of benchmark provider ``index``."""
    return str(uuid.uuid5(_NAMESPACE, f"provider-{index}"))


def aggregate_uuid(datacentre: str) -> str:
    """Stable UUID of a data centre's aggregate."""
    return str(uuid.uuid5(_NAMESPACE, f"aggregate-{datacentre}"))


def provider_name(index: int) -> str:
    """The same name govcloud gives host ``index`` (:func:`benchmarks.seed_hosts`)."""
    return f"{DATACENTRES[index % len(DATACENTRES)]}-h{index:04d}"


def inventories(
    capacity: Resources = ROOMY_HOST,
    reserved: Resources = DEFAULT_RESERVED,
    ratios: AllocationRatios | None = None,
) -> dict[str, dict[str, Any]]:
    """A host's Placement inventories. Placement's capacity is ``(total - reserved) *
    allocation_ratio``, govcloud's usable is the floor of the same, so both offer the same
    room. ``max_unit`` is the total, as Nova's libvirt driver reports it."""
    ratios = ratios or AllocationRatios()
    dims = (
        ("VCPU", capacity.vcpus, reserved.vcpus, ratios.cpu),
        ("MEMORY_MB", capacity.ram_mib, reserved.ram_mib, ratios.ram),
        ("DISK_GB", capacity.disk_gib, reserved.disk_gib, ratios.disk),
    )
    return {
        rc: {
            "total": total,
            "reserved": held,
            "min_unit": 1,
            "max_unit": total,
            "step_size": 1,
            "allocation_ratio": ratio,
        }
        for rc, total, held, ratio in dims
    }


def resources_query(flavor: Flavor = FLAVOR) -> str:
    """``VCPU:1,MEMORY_MB:2048,DISK_GB:20`` for a flavor."""
    return f"VCPU:{flavor.vcpus},MEMORY_MB:{flavor.ram_mib},DISK_GB:{flavor.disk_gib}"


def candidate_params(flavor: Flavor = FLAVOR, limit: int = NOVA_LIMIT) -> dict[str, str]:
    """Query of Nova's ``GET /allocation_candidates`` for one instance of ``flavor``
    (Nova always adds the forbidden root trait of disabled computes)."""
    return {
        "resources": resources_query(flavor),
        "limit": str(limit),
        "root_required": "!COMPUTE_STATUS_DISABLED",
    }


def allocation_requests(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``allocations`` of each allocation request, in Placement's order."""
    requests = body.get("allocation_requests")
    if not isinstance(requests, list):
        raise ValueError("allocation_candidates response has no allocation_requests list")
    out: list[dict[str, Any]] = []
    for item in requests:
        allocations = item.get("allocations") if isinstance(item, dict) else None
        if not isinstance(allocations, dict) or not allocations:
            raise ValueError(f"malformed allocation request: {item!r}")
        out.append(allocations)
    return out


def allocation_payload(allocations: Mapping[str, Any]) -> dict[str, Any]:
    """Body of ``PUT /allocations/{consumer}`` for a new consumer (microversion 1.28+)."""
    return {
        "allocations": {rp: {"resources": dict(a["resources"])} for rp, a in allocations.items()},
        "project_id": PROJECT_ID,
        "user_id": USER_ID,
        "consumer_generation": None,
    }


def error_code(response: httpx.Response) -> str:
    """The first error's ``code`` of a Placement error body, or ``""``."""
    try:
        errors = response.json().get("errors") or [{}]
        return str(errors[0].get("code", ""))
    except (ValueError, AttributeError, IndexError):
        return ""


# -- the decision ------------------------------------------------------------------------


def decide(client: httpx.Client, index: int, *, limit: int = NOVA_LIMIT) -> Outcome:
    """Nova's scheduling decision for one instance: candidates, then the claim."""
    start = time.perf_counter()
    response = client.get("/allocation_candidates", params=candidate_params(limit=limit))
    got = time.perf_counter()
    if response.status_code != 200:
        return Outcome(got - start, False, error=f"GET {response.status_code}")
    candidates = allocation_requests(response.json())
    if not candidates:
        return Outcome(got - start, False, error="no candidates")
    consumer = str(uuid.uuid5(_NAMESPACE, f"consumer-{index}-{uuid.uuid4()}"))
    conflicts = server_errors = 0
    for allocations in candidates:
        payload = allocation_payload(allocations)
        for _attempt in range(1 + CONCURRENT_UPDATE_RETRIES):
            put = client.put(f"/allocations/{consumer}", json=payload)
            if put.status_code == 204:
                done = time.perf_counter()
                parts = (("get", got - start), ("put", done - got))
                return Outcome(done - start, True, conflicts, "", server_errors, parts)
            if put.status_code >= 500:
                server_errors += 1  # e.g. SQLite "database is locked": Nova moves on
                break
            if put.status_code != 409:
                done = time.perf_counter()
                error = f"PUT {put.status_code}"
                return Outcome(done - start, False, conflicts, error, server_errors)
            conflicts += 1
            if error_code(put) != CONCURRENT_UPDATE:
                break  # this host is full now: the next candidate (Nova's alternate)
    elapsed = time.perf_counter() - start
    return Outcome(elapsed, False, conflicts, "no candidate could be claimed", server_errors)


# -- the service -------------------------------------------------------------------------


def venv_dir() -> Path:
    """The reference's virtualenv (``$GOVCLOUD_PLACEMENT_VENV`` or ``.bench/placement-venv``)."""
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)


def check_available() -> Path:
    """The virtualenv, or :class:`ReferenceUnavailable` saying how to build it."""
    venv = venv_dir()
    if not (venv / "bin" / "placement-manage").exists() or not (venv / "bin" / "gunicorn").exists():
        raise ReferenceUnavailable(
            f"no OpenStack Placement virtualenv at {venv}: run scripts/placement-ref.sh"
        )
    return venv


def placement_version(venv: Path) -> str:
    """The installed ``openstack-placement`` version."""
    for dist in (venv / "lib").glob("python3*/site-packages/openstack_placement-*.dist-info"):
        return dist.name.removesuffix(".dist-info").split("-")[1]
    return "unknown"


def write_config(config_dir: Path, database: Path) -> Path:
    """``placement.conf`` for noauth2 on the SQLite file ``database``."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "placement.conf"
    path.write_text(
        "[DEFAULT]\n"
        "debug = False\n"
        "[api]\n"
        "auth_strategy = noauth2\n"
        "[placement_database]\n"
        f"connection = sqlite:///{database.resolve()}\n",
        encoding="utf-8",
    )
    return path


def _placement_env(config_dir: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | {
        "OS_PLACEMENT_CONFIG_DIR": str(config_dir)
    }


def _ready(client: httpx.Client) -> bool:
    return client.get("/resource_providers", headers=HEADERS).status_code == 200


@contextmanager
def placement_service(
    venv: Path,
    workdir: Path,
    database: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    wal: bool = True,
) -> Iterator[Service]:
    """Placement on the SQLite file ``database`` (synced first), served by gunicorn with
    ``workers`` processes of ``threads`` threads on a free port."""
    import subprocess  # only the reference side runs a command to completion

    config_dir = workdir / f"placement-conf-{database.stem}"
    write_config(config_dir, database)
    env = _placement_env(config_dir)
    synced = subprocess.run(
        [str(venv / "bin" / "placement-manage"), "--config-dir", str(config_dir), "db", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if synced.returncode != 0:
        raise ServiceFailed(f"placement-manage db sync failed:\n{synced.stderr[-2000:]}")
    if wal:
        with sqlite3.connect(database) as conn:  # persistent: readers stop blocking writers
            conn.execute("PRAGMA journal_mode=WAL")
    port = free_port()
    argv = [
        str(venv / "bin" / "gunicorn"),
        f"--workers={workers}",
        f"--threads={threads}",
        f"--bind=127.0.0.1:{port}",
        f"--control-socket={config_dir / 'gunicorn.ctl'}",
        "--timeout=300",
        "placement.wsgi.api:application",
    ]
    log = workdir / f"placement-{port}.log"
    with spawn("placement", argv, url=f"http://127.0.0.1:{port}", log=log, env=env) as service:
        service.wait_ready(_ready, 120.0)
        yield service


def client_for(service: Service, timeout_s: float = 120.0) -> httpx.Client:
    """An HTTP client with Placement's noauth2 and microversion headers."""
    return httpx.Client(base_url=service.url, headers=HEADERS, timeout=timeout_s)


# -- loading the inventory ---------------------------------------------------------------


def _raise_for(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise ServiceFailed(f"{what}: {response.status_code} {response.text[:500]}")
    return response


def _locked(response: httpx.Response) -> bool:
    return response.status_code == 500 and "database is locked" in response.text


def _send(client: httpx.Client, method: str, url: str, body: dict[str, Any]) -> httpx.Response:
    """One loading call, repeated while SQLite answers "database is locked" (the failed
    transaction was rolled back, so repeating it is safe)."""
    for attempt in range(50):
        response = client.request(method, url, json=body)
        if not _locked(response):
            return response
        time.sleep(0.01 * (attempt + 1))
    return response


def load_provider(client: httpx.Client, index: int, capacity: Resources = ROOMY_HOST) -> None:
    """Create provider ``index`` with its inventories in its data centre's aggregate, as
    Nova's compute would (three calls)."""
    rp = provider_uuid(index)
    created = _send(
        client, "POST", "/resource_providers", {"uuid": rp, "name": provider_name(index)}
    )
    generation = int(_raise_for(created, f"create provider {index}").json()["generation"])
    inv = _send(
        client,
        "PUT",
        f"/resource_providers/{rp}/inventories",
        {"resource_provider_generation": generation, "inventories": inventories(capacity)},
    )
    generation = int(
        _raise_for(inv, f"inventories of provider {index}").json()["resource_provider_generation"]
    )
    dc = DATACENTRES[index % len(DATACENTRES)]
    agg = _send(
        client,
        "PUT",
        f"/resource_providers/{rp}/aggregates",
        {"aggregates": [aggregate_uuid(dc)], "resource_provider_generation": generation},
    )
    _raise_for(agg, f"aggregates of provider {index}")


def load_providers(service: Service, indices: Sequence[int], *, clients: int = 8) -> float:
    """Load providers ``indices`` from ``clients`` threads; returns the seconds it took."""
    chunks = [list(indices[i :: max(1, clients)]) for i in range(max(1, clients))]

    def load(chunk: list[int]) -> None:
        with client_for(service) as client:
            for index in chunk:
                load_provider(client, index)

    start = time.perf_counter()
    with ThreadPoolExecutor(len(chunks), thread_name_prefix="placement-load") as pool:
        list(pool.map(load, chunks))
    return time.perf_counter() - start


def count_providers(service: Service) -> int:
    """How many resource providers the service has."""
    with client_for(service) as client:
        response = _raise_for(client.get("/resource_providers"), "list providers")
        return len(response.json()["resource_providers"])


def cache_key(providers: int, version: str) -> str:
    """File stem of a cached loaded database: changes when the inventory does."""
    inv = inventories()
    shape = "-".join(
        f"{inv[rc]['total']}r{inv[rc]['reserved']}x{inv[rc]['allocation_ratio']}"
        for rc in sorted(inv)
    )
    return f"placement-{version}-{providers}-{len(DATACENTRES)}dc-{shape}"


def loaded_database(
    venv: Path, workdir: Path, providers: int, *, cache_dir: Path = CACHE_DIR, clients: int = 2
) -> tuple[Path, dict[str, Any]]:
    """A fresh copy of a Placement database holding ``providers`` providers, and the record
    of how long loading them over HTTP took (``load_s``, ``loaded_at``, ``cached``): now,
    or when the cached copy was made."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = cache_key(providers, placement_version(venv))
    cached, record_path = cache_dir / f"{stem}.db", cache_dir / f"{stem}.json"
    if cached.exists():
        try:
            record: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {"providers": providers, "load_s": None}
        record["cached"] = True
    else:
        building = workdir / f"loading-{providers}.db"
        building.unlink(missing_ok=True)
        loadavg = round(os.getloadavg()[0], 2)
        # One server thread: concurrent writers on SQLite only fight over the lock.
        with placement_service(venv, workdir, building, workers=1, threads=1) as service:
            took = load_providers(service, range(providers), clients=clients)
            found = count_providers(service)
        if found != providers:
            raise ServiceFailed(f"loaded {found} providers, expected {providers}")
        shutil.copyfile(building, cached)
        record = {
            "providers": providers,
            "load_s": round(took, 1),
            "clients": clients,
            "loadavg_1m_at_start": loadavg,
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        record_path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        record["cached"] = False
    copy = workdir / f"placement-{providers}-{time.monotonic_ns()}.db"
    shutil.copyfile(cached, copy)
    return copy, record
