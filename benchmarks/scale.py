"""(c) End to end at scale: 1,000 create requests across 300 simulated hosts until RUNNING.

Everything real and over HTTP: one ``govcloud-api`` with ``API_WORKERS`` uvicorn worker
processes (:mod:`benchmarks.services`),
300 host agents running the real agent code on the libvirt test driver
(:mod:`benchmarks.agentpool`: several agents per process, each with its own simulated host
and HTTP client, loops in threads), and 8 client threads sending ``POST /v1/instances``.

Figures: the time from the first create until every instance is RUNNING (seen by the
client polling ``GET /v1/instances``, and from the server's own timestamps: last
``launched_at`` minus first ``created_at``), and accept->RUNNING per instance
(``launched_at - created_at``, both stamped by the API's clock, so the client's polling
adds nothing). The memory of every process (RSS) is reported too, to size how many agents
fit per process and per machine, and the CPU the API (all its processes) and the agents
used while the fleet was idle and while the creates ran.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import (
    DATACENTRES,
    FLAVOR,
    IMAGE,
    PROJECT,
    Context,
    Result,
    Row,
    backend_of,
    latency_ms,
    seed_catalogue,
)
from benchmarks.httpload import Outcome, drive
from benchmarks.services import ADMIN_TOKEN, REPO, Service, child_env, govcloud_api
from controlplane.store import open_store

NAME = "scale"
HOST_CAPACITY = {"vcpus": 32, "ram_mib": 65536, "disk_gib": 4000}
#: The agents' long-poll wait: the default of both sides (``AgentSettings.poll_wait_s``,
#: ``Settings.max_poll_wait_s``). Stopping does not wait for it: the API is stopped first,
#: which ends the long-polls in flight.
POLL_WAIT_S = 30.0
#: The agents' first heartbeat interval; the control plane's own setting replaces it.
HEARTBEAT_S = 4.0
CLIENTS = 8
#: uvicorn worker processes of the API. One: on SQLite, two workers were measured slower
#: (172 s instead of 77 s on the same loaded machine, each worker using only 0.3 core):
#: the processes queue for SQLite's single write lock, whose busy handler sleeps instead
#: of handing the lock over (see docs/benchmarks.md). ``measure_scale(api_workers=N)``.
API_WORKERS = 1
#: The configurations measured: SQLite with one worker; with a PostgreSQL cluster also
#: PostgreSQL with one and with two workers (replicas over one database, no shared lock).
CONFIGURATIONS: tuple[tuple[str, int], ...] = (("sqlite", 1), ("postgres", 1), ("postgres", 2))
READY_TIMEOUT_S = 300.0
#: How long the idle fleet's load on the API is sampled before the creates.
IDLE_WINDOW_S = 5.0


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (uvicorn's workers)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live children."""
    return cpu_s(pid) + sum(cpu_s(child) for child in children(pid))


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its live children, in MiB."""
    return rss_mib(pid) + sum(rss_mib(child) for child in children(pid))


@contextmanager
def agent_pools(
    url: str,
    tokens: list[tuple[str, str]],
    workdir: Path,
    per_process: int,
    poll_wait_s: float = POLL_WAIT_S,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the agents (``(name, token)`` each) in processes of ``per_process`` agents;
    wait until all are registered and running; stop them on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    workdir.mkdir(parents=True, exist_ok=True)
    # The first process holds one agent: the memory of one agent per process.
    bounds = [0, *range(1, len(tokens), per_process), len(tokens)]
    try:
        for start, end in itertools.pairwise(bounds):
            chunk = tokens[start:end]
            spec = {
                "control_plane_url": url,
                "poll_wait_s": poll_wait_s,
                "heartbeat_interval_s": HEARTBEAT_S,
                "agents": [
                    {
                        "name": name,
                        "bootstrap_token": token,
                        "state_dir": str(workdir / "agents" / name),
                        **HOST_CAPACITY,
                    }
                    for name, token in chunk
                ],
            }
            path = workdir / f"pool-{start}.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            log = workdir / f"pool-{start}.log"
            logs.append(log)
            with log.open("wb") as err:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "benchmarks.agentpool", str(path)],
                        stdout=subprocess.PIPE,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                        env=child_env(),
                        cwd=REPO,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + READY_TIMEOUT_S
        for proc, log in zip(procs, logs, strict=True):
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            # "ready N" once every agent of the process has registered and started
            line = proc.stdout.readline().decode().strip() if readable else "(timed out)"
            if not line.startswith("ready"):
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"agent pool failed to start: {line!r}\n{tail}")
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=poll_wait_s + 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _create(client: httpx.Client, index: int) -> Outcome:
    start = time.perf_counter()
    response = client.post(
        "/v1/instances",
        json={
            "name": f"e2e-{index:05d}",
            "project": PROJECT,
            "flavor": FLAVOR.name,
            "image": IMAGE.name,
        },
    )
    elapsed = time.perf_counter() - start
    if response.status_code == 202:
        return Outcome(elapsed, True)
    return Outcome(elapsed, False, error=f"POST {response.status_code}")


def _list_all(client: httpx.Client, state: str | None = None) -> list[dict[str, Any]]:
    """Every instance (in ``state``), page by page."""
    items: list[dict[str, Any]] = []
    marker: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if state:
            params["state"] = state
        if marker:
            params["marker"] = marker
        page = client.get("/v1/instances", params=params).raise_for_status().json()
        items += page["items"]
        marker = page.get("next_marker")
        if not marker:
            return items


#: The states an instance passes through on its way to RUNNING (ERROR ends the wait too).
_ON_THE_WAY = ("PENDING", "SCHEDULED", "BUILDING")


def _wait_settled(client: httpx.Client, timeout_s: float) -> None:
    """Poll every 0.25 s until no instance is on its way to RUNNING (or ``timeout_s``
    passes): one filtered listing per state, so each poll reads only the stragglers,
    not every instance again."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if not any(_list_all(client, state) for state in _ON_THE_WAY):
            return
        time.sleep(0.25)


def measure_scale(
    url: str,
    workdir: Path,
    *,
    hosts: int,
    instances: int,
    agents_per_process: int = 50,
    poll_wait_s: float = POLL_WAIT_S,
    idle_window_s: float = IDLE_WINDOW_S,
    timeout_s: float = 600.0,
    api_workers: int = API_WORKERS,
) -> Row:
    """Seed a fresh database at ``url``, serve it, start ``hosts`` agents, create
    ``instances`` from 8 clients and wait until all are RUNNING; returns the figures.
    ``poll_wait_s`` (the agents' long-poll) bounds how long stopping takes; the wait for
    RUNNING gives up ``timeout_s`` after the last create was answered."""
    store = open_store(url)
    try:
        seed_catalogue(store)
        tokens = [
            (
                f"{DATACENTRES[i % len(DATACENTRES)]}-sim{i:04d}",
                store.hosts.issue_bootstrap_token(DATACENTRES[i % len(DATACENTRES)], "bench")[0],
            )
            for i in range(hosts)
        ]
    finally:
        store.close()
    env = {
        "GOVCLOUD_MAX_POLL_WAIT_S": str(poll_wait_s),
    }
    with ExitStack() as stack:
        api: Service = stack.enter_context(govcloud_api(url, workdir, env=env, workers=api_workers))
        started = time.perf_counter()
        pools = stack.enter_context(
            agent_pools(api.url, tokens, workdir, agents_per_process, poll_wait_s)
        )
        agents_ready_s = time.perf_counter() - started

        # What the idle fleet costs the API (heartbeats, long-polls) before any create.
        def agents_cpu_s() -> float:
            return sum(cpu_s(p.pid) for p in pools)

        cpu_before, idle_start = tree_cpu_s(api.proc.pid), time.perf_counter()
        agents_before = agents_cpu_s()
        time.sleep(idle_window_s)
        idle_wall = time.perf_counter() - idle_start
        idle_cpu = (tree_cpu_s(api.proc.pid) - cpu_before) / idle_wall
        idle_agents_cpu = (agents_cpu_s() - agents_before) / idle_wall
        rss_api_idle = tree_rss_mib(api.proc.pid)
        rss_pools = [rss_mib(p.pid) for p in pools]
        rss_single = rss_pools[0] if len(rss_pools) > 1 else None
        rss_pools = rss_pools[1:] if len(rss_pools) > 1 else rss_pools

        def client() -> httpx.Client:
            return httpx.Client(
                base_url=api.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=120
            )

        begin = time.perf_counter()
        busy_api_before, busy_agents_before = tree_cpu_s(api.proc.pid), agents_cpu_s()
        outcomes, post_wall = drive(client, _create, requests=instances, clients=CLIENTS)
        with client() as poller:
            _wait_settled(poller, timeout_s)
            all_running_client_s = time.perf_counter() - begin
            busy_api_cpu = (tree_cpu_s(api.proc.pid) - busy_api_before) / all_running_client_s
            busy_agents_cpu = (agents_cpu_s() - busy_agents_before) / all_running_client_s
            rss_api_busy = tree_rss_mib(api.proc.pid)
            listing = [i for i in _list_all(poller) if i["name"].startswith("e2e-")]
        running = sum(1 for i in listing if i["state"] == "RUNNING")
        api.stop()  # ends the agents' long-polls in flight, so they stop at once
    created = [datetime.fromisoformat(i["created_at"]) for i in listing]
    launched = [datetime.fromisoformat(i["launched_at"]) for i in listing if i.get("launched_at")]
    to_running = [
        (
            datetime.fromisoformat(i["launched_at"]) - datetime.fromisoformat(i["created_at"])
        ).total_seconds()
        for i in listing
        if i.get("launched_at")
    ]
    span = (max(launched) - min(created)).total_seconds() if launched and created else None
    states: dict[str, int] = {}
    for item in listing:
        states[item["state"]] = states.get(item["state"], 0) + 1
    return {
        "backend": backend_of(url),
        "hosts": hosts,
        "agent_processes": len(pools),
        "api_workers": api_workers,
        "instances": instances,
        "post_failed": sum(1 for o in outcomes if not o.ok),
        "running": running,
        "not_running": ", ".join(f"{s} x{n}" for s, n in sorted(states.items()) if s != "RUNNING"),
        "agents_ready_s": round(agents_ready_s, 1),
        "api_cpu_idle_fleet": round(idle_cpu, 2),
        "agents_cpu_idle_fleet": round(idle_agents_cpu, 2),
        "api_cpu_busy": round(busy_api_cpu, 2),
        "agents_cpu_busy": round(busy_agents_cpu, 2),
        "posts_s": round(post_wall, 2),
        "all_running_s": round(span, 2) if span is not None else None,
        "all_running_seen_s": round(all_running_client_s, 2),
        **latency_ms(to_running),
        **latency_ms([o.latency_s for o in outcomes if o.ok], prefix="post_"),
        "rss_api_mib": round(max(rss_api_idle, rss_api_busy), 1),
        "rss_one_agent_process_mib": round(rss_single, 1) if rss_single else None,
        "rss_pool_process_mib": round(max(rss_pools), 1) if rss_pools else None,
        "rss_agents_total_mib": round(sum(rss_pools) + (rss_single or 0.0), 1),
        "rss_per_pooled_agent_mib": round(sum(rss_pools) / max(1, hosts - 1), 2),
    }


def run(context: Context) -> Result:
    """300 hosts, 1,000 instances (quick: 30 and 100) in each of the ``CONFIGURATIONS``
    whose backend is available (SQLite always)."""
    hosts, instances = (30, 100) if context.quick else (300, 1000)
    result = Result(
        name=NAME,
        title="End to end at scale: creates until RUNNING on simulated hosts",
        description=(
            "One `govcloud-api` (uvicorn, `api_workers` worker processes) over SQLite or "
            f"PostgreSQL (`backend`), {hosts} real agents on the "
            "libvirt test driver (one process with a single agent, the rest 50 per process, "
            "each agent with its own simulated host and HTTP client, its heartbeat, "
            "reconcile (long-poll) and Lab usage-reporter loops in threads; "
            f"long-poll wait {POLL_WAIT_S:.0f} s), "
            f"{instances} `POST /v1/instances` from {CLIENTS} client threads. "
            "`all_running_s`: last `launched_at` minus first `created_at` (server clock); "
            "`all_running_seen_s`: first POST until the client saw no instance left on its "
            "way to RUNNING (polling every 0.25 s for PENDING, SCHEDULED and BUILDING "
            "ones). Percentiles: accept->RUNNING per instance "
            "(`launched_at - created_at`); `post_*`: the create calls. `api_cpu_idle_fleet`: "
            f"CPU cores the API (all its processes) used over {IDLE_WINDOW_S:.0f} s while "
            "the agents were registered and idle (heartbeats and long-polls), before any "
            "create; `agents_cpu_idle_fleet` the same for all agent processes; "
            "`api_cpu_busy`, `agents_cpu_busy`: cores used from the first create until all "
            "were RUNNING. `rss_api_mib` sums the API's processes."
        ),
        columns=[
            "backend",
            "hosts",
            "agent_processes",
            "api_workers",
            "instances",
            "running",
            "post_failed",
            "all_running_s",
            "all_running_seen_s",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "post_p50_ms",
            "post_p95_ms",
            "agents_ready_s",
            "api_cpu_idle_fleet",
            "agents_cpu_idle_fleet",
            "api_cpu_busy",
            "agents_cpu_busy",
            "rss_api_mib",
            "rss_one_agent_process_mib",
            "rss_pool_process_mib",
            "rss_agents_total_mib",
            "rss_per_pooled_agent_mib",
        ],
    )
    for backend, workers in CONFIGURATIONS:
        if backend not in context.databases.backends:
            continue
        url = context.databases.fresh(backend, f"scale_{workers}")
        row = measure_scale(
            url,
            context.workdir / f"scale-{backend}-{workers}",
            hosts=hosts,
            instances=instances,
            api_workers=workers,
        )
        result.rows.append(row)
        context.progress(
            f"scale ({backend}, {workers} worker(s)): {row['running']}/{instances} RUNNING "
            f"in {row['all_running_s']} s, p95 {row['p95_ms']} ms"
        )
    result.notes += [
        "Agents per process: each agent process is a Python interpreter with httpx, "
        "libvirt and pydantic loaded. `rss_one_agent_process_mib` is what one agent per "
        "process costs per host; `rss_per_pooled_agent_mib` what an agent costs when 50 "
        "share a process.",
        "The test driver starts domains instantly: this is the control plane's and agents' "
        "share of provisioning time, without a guest's boot.",
    ]
    return result
