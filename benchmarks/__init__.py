"""Reproducible performance runs of govcloud: ``python -m benchmarks`` (``make bench``).

One module per benchmark (:mod:`benchmarks.placement`, :mod:`benchmarks.api`,
:mod:`benchmarks.agent`, :mod:`benchmarks.provisioning`); each has ``run(context)`` for the
runner and ``measure_*`` functions for one configuration (the smoke test calls those with
the smallest sizes). This module holds what they share: latency statistics, fresh
databases on SQLite and on a throwaway PostgreSQL cluster (copied from seeded templates),
the benchmark fleet and catalogue, and the JSON / Markdown report.

Benchmarks *report* figures; nothing here asserts a time. The machines are small and
shared, so every report carries the machine it ran on.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.protocol.v1 import RegisterRequest
from controlplane.domain.datacentre import DataCentre
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.domain.resources import Resources
from controlplane.store import Store, open_store
from tests.pg import PgCluster

Scalar = str | int | float | bool | None
Row = dict[str, Scalar]

#: The benchmark fleet's data centres (hosts are spread over them round-robin).
DATACENTRES: tuple[str, ...] = ("tpe-1", "txg-1", "khh-1")
#: Organisation path created by :func:`seed_catalogue`; instances go into the project.
ORGS: tuple[tuple[str, str], ...] = (("moi", "gov"), ("nfa", "moi"), ("disaster", "nfa"))
PROJECT = "disaster"
#: Every benchmark instance has this flavor (1 vCPU, 2 GiB RAM, 20 GiB disk) and image.
FLAVOR = Flavor(name="m1.small", vcpus=1, ram_mib=2048, disk_gib=20)
IMAGE = Image(name="cirros", path="/var/lib/govcloud/images/cirros.qcow2")
#: A typical hypervisor (the demo's Taipei host): room for ~32 m1.small instances.
ROOMY_HOST = Resources(vcpus=32, ram_mib=65536, disk_gib=4000)
#: A host with room for exactly two m1.small instances (RAM and disk bound; 512 MiB of RAM
#: is reserved by default), so concurrent requests collide on the last free slots.
TIGHT_HOST = Resources(vcpus=1, ram_mib=2 * FLAVOR.ram_mib + 512, disk_gib=2 * FLAVOR.disk_gib)


# -- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_ms(samples_s: Sequence[float], prefix: str = "") -> Row:
    """``{prefix}mean_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` of samples in s."""
    if not samples_s:
        return {f"{prefix}{k}_ms": None for k in ("mean", "p50", "p95", "p99", "max")}
    ms = [s * 1000.0 for s in samples_s]
    return {
        f"{prefix}mean_ms": round(sum(ms) / len(ms), 3),
        f"{prefix}p50_ms": round(percentile(ms, 50), 3),
        f"{prefix}p95_ms": round(percentile(ms, 95), 3),
        f"{prefix}p99_ms": round(percentile(ms, 99), 3),
        f"{prefix}max_ms": round(max(ms), 3),
    }


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgres`` for a database URL."""
    return "postgres" if url.startswith("postgresql") else "sqlite"


# -- log counting -------------------------------------------------------------------------


class _Counter(logging.Handler):
    """Counts matching records; passes on what the logger would have shown anyway."""

    def __init__(self, prefix: str, forward: logging.Logger | None, forward_level: int) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix
        self.forward = forward
        self.forward_level = forward_level
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        if record.getMessage().startswith(self.prefix):
            self.count += 1
        if self.forward is not None and record.levelno >= self.forward_level:
            self.forward.handle(record)


@contextmanager
def counting_log_records(logger_name: str, prefix: str) -> Iterator[Callable[[], int]]:
    """Count records of ``logger_name`` whose message starts with ``prefix``.

    Meanwhile the logger emits INFO and up, but only records at its previous effective
    level reach the handlers above it (so the counted INFO lines are not printed).
    Yields a function returning the count so far.
    """
    logger = logging.getLogger(logger_name)
    level, propagate = logger.level, logger.propagate
    effective = logger.getEffectiveLevel()
    handler = _Counter(prefix, logger.parent if propagate else None, effective)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(min(effective, logging.INFO))
    try:
        yield lambda: handler.count
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


# -- the benchmark fleet ----------------------------------------------------------------


def seed_catalogue(store: Store) -> None:
    """Data centres, the benchmark flavor and image, and the organisation path."""
    for code in DATACENTRES:
        store.datacentres.create(DataCentre(code=code, name=f"Benchmark {code}"))
    store.flavors.create(FLAVOR)
    store.images.create(IMAGE)
    for code, parent in ORGS:
        store.orgs.create(code, code.upper(), parent)


def seed_hosts(store: Store, count: int, capacity: Resources = ROOMY_HOST) -> None:
    """Enrol ``count`` hosts, round-robin over :data:`DATACENTRES`, as their agents would
    (one bootstrap token each, then registration)."""
    for i in range(count):
        dc = DATACENTRES[i % len(DATACENTRES)]
        token, _expires = store.hosts.issue_bootstrap_token(dc, "benchmark")
        store.hosts.register(
            RegisterRequest(
                bootstrap_token=token,
                name=f"{dc}-h{i:04d}",
                capacity=capacity,
                libvirt_uri="test:///default",
                agent_version="benchmark",
            )
        )


def prepare_fleet(url: str, hosts: int, capacity: Resources = ROOMY_HOST) -> None:
    """Migrate the database at ``url`` and seed the catalogue and ``hosts`` hosts."""
    store = open_store(url)
    try:
        seed_catalogue(store)
        seed_hosts(store, hosts, capacity)
    finally:
        store.close()


def hosts_over_capacity(store: Store) -> int:
    """How many hosts have more claimed than usable in some dimension (must be 0)."""
    over = 0
    for host in store.hosts.list():
        total = host.usable
        if (
            host.used.vcpus > total.vcpus
            or host.used.ram_mib > total.ram_mib
            or host.used.disk_gib > total.disk_gib
        ):
            over += 1
    return over


# -- databases ---------------------------------------------------------------------------


class Databases:
    """Fresh databases on each backend: SQLite files under ``workdir`` and, when a cluster
    is given, PostgreSQL databases in it. Seeded templates are built once per key and
    copied for every measurement, so each measurement starts from the same state."""

    def __init__(self, workdir: Path, cluster: PgCluster | None = None) -> None:
        self.workdir = workdir
        self.cluster = cluster
        self._templates: set[tuple[str, str]] = set()
        self._serial = 0
        self._lock = threading.Lock()

    @property
    def backends(self) -> tuple[str, ...]:
        """``sqlite``, plus ``postgres`` when a cluster is available."""
        return ("sqlite", "postgres") if self.cluster is not None else ("sqlite",)

    def _next(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def _sqlite_path(self, name: str) -> Path:
        return self.workdir / f"{name}.db"

    def fresh(self, backend: str, name: str = "db") -> str:
        """A new, empty (unmigrated) database."""
        unique = f"{name}_{self._next()}"
        if backend == "sqlite":
            return f"sqlite:///{self._sqlite_path(unique)}"
        return self._pg().create_database(unique)

    def seeded(self, backend: str, key: str, build: Callable[[str], None]) -> str:
        """A fresh copy of template ``key``, which ``build(url)`` populates on first use
        (``build`` must close its connections). ``key``: lowercase letters, digits, _."""
        template = f"tpl_{key}"
        if (backend, key) not in self._templates:
            if backend == "sqlite":
                build(f"sqlite:///{self._sqlite_path(template)}")
            else:
                build(self._pg().create_database(template))
            self._templates.add((backend, key))
        copy = f"{key}_{self._next()}"
        if backend == "sqlite":
            source, target = self._sqlite_path(template), self._sqlite_path(copy)
            shutil.copyfile(source, target)
            wal = source.with_name(source.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, target.with_name(target.name + "-wal"))
            return f"sqlite:///{target}"
        return self._pg().create_database(copy, template=template)

    def _pg(self) -> PgCluster:
        if self.cluster is None:
            raise RuntimeError("no PostgreSQL cluster in this run")
        return self.cluster


# -- results -----------------------------------------------------------------------------


@dataclass
class Context:
    """What the runner hands each benchmark's ``run``."""

    databases: Databases
    workdir: Path
    quick: bool = False
    progress: Callable[[str], None] = lambda _line: None


@dataclass
class Result:
    """One benchmark's outcome: a table (``rows`` shown in ``columns`` order) and notes."""

    name: str
    title: str
    description: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "duration_s": round(self.duration_s, 3),
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
        }


def format_value(value: Any) -> str:
    """A table cell: floats to a precision that fits their size."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_value(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable form of a report written by the runner."""
    machine: Mapping[str, Any] = report["machine"]
    git: Mapping[str, Any] = report["git"]
    out = [
        f"# govcloud benchmarks: {report['suite']} ({report['date']})",
        "",
        f"Run `{report['command']}` at git commit `{git['commit']}`"
        + (" (working tree had uncommitted changes)" if git.get("dirty") else "")
        + f"; {report['duration_s']:.0f} s in all"
        + (" (quick mode: fewer requests, figures are rougher)." if report["quick"] else "."),
        "",
        "Machine: " + ", ".join(f"{k} {format_value(v)}" for k, v in machine.items()) + ".",
        "Figures are from one run on this machine; small shared machines are noisy, so "
        "compare runs on the same machine only.",
    ]
    for bench in report["benchmarks"].values():
        out += ["", f"## {bench['title']}", "", bench["description"], ""]
        out.append(markdown_table(bench["columns"], bench["rows"]))
        if bench["notes"]:
            out.append("")
            out += [f"- {note}" for note in bench["notes"]]
    return "\n".join(out) + "\n"


def write_report(report: Mapping[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
