"""``python -m benchmarks [--quick] [--only NAME ...]``: run the benchmarks and write
``benchmarks/results/<date>-<suite>.json`` and ``.md``.

A throwaway PostgreSQL cluster (``tests/pg.py``) is started for the run and always stopped;
without PostgreSQL binaries (or with ``--no-postgres``) only SQLite is measured and the
report says so. Everything else runs in-process in temporary directories.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import Context, Databases, Result, write_report
from tests.pg import PgCluster, PgUnavailable

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
#: The benchmarks in run order; each is the module ``benchmarks.<name>``.
BENCHMARKS: tuple[str, ...] = (
    "placement",
    "api",
    "agent",
    "provisioning",
    "versus",
    "scale",
    "planner",
    "scheduler",
)
#: Benchmarks that need no database.
NO_DATABASE = frozenset({"agent", "planner", "scheduler"})
FULL_SUITE = "provisioning"


def _load() -> dict[str, Callable[[Context], Result]]:
    """Each benchmark's ``run``, imported only now: after the warning filters are set."""
    from benchmarks import agent, api, placement, provisioning, scale, versus

    runs: dict[str, Callable[[Context], Result]] = {
        module.NAME: module.run for module in (placement, api, agent, provisioning, versus, scale)
    }
    from benchmarks import planner

    runs[planner.NAME] = planner.run
    from benchmarks import scheduler

    runs[scheduler.NAME] = scheduler.run
    assert tuple(runs) == BENCHMARKS
    return runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run govcloud's benchmarks and write JSON + Markdown results.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer requests and repetitions (about a minute)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="measure SQLite only (no PostgreSQL cluster)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS, help=f"where to write (default {RESULTS})"
    )
    return parser


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(status)}


def _meminfo_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _libvirt_version() -> str:
    try:
        import libvirt
    except ImportError:
        return "not installed"
    number = int(libvirt.getVersion())
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def _postgres_version(cluster: PgCluster | None, reason: str) -> str:
    if cluster is None:
        return f"not measured ({reason})"
    with psycopg.connect(cluster.dsn("postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def machine_info(cluster: PgCluster | None, pg_reason: str = "") -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        binding = metadata.version("libvirt-python")
    except metadata.PackageNotFoundError:
        binding = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "ram_gib": _meminfo_gib(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(cluster, pg_reason),
        "libvirt": _libvirt_version(),
        "libvirt_python": binding,
    }


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    runs = _load()
    # SIGTERM (e.g. `kill`) unwinds like Ctrl-C, so the PostgreSQL cluster is stopped.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    suite = FULL_SUITE if not args.only else "-".join(names)
    started = datetime.now(UTC)
    began = time.perf_counter()
    cluster: PgCluster | None = None
    pg_reason = "--no-postgres" if args.no_postgres else "not needed"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="govcloud-bench-") as tmp:
        try:
            if not args.no_postgres and any(n not in NO_DATABASE for n in names):
                try:
                    cluster = PgCluster.start()
                except PgUnavailable as err:
                    pg_reason = str(err)
                    print(f"PostgreSQL unavailable, SQLite only: {err}", file=sys.stderr)
            machine = machine_info(cluster, pg_reason)
            context = Context(
                databases=Databases(Path(tmp), cluster),
                workdir=Path(tmp),
                quick=args.quick,
                progress=_progress,
            )
            for name in names:
                print(f"{name} ...", file=sys.stderr, flush=True)
                start = time.perf_counter()
                result = runs[name](context)
                result.duration_s = time.perf_counter() - start
                results[name] = result.as_dict()
                print(f"{name} done in {result.duration_s:.1f} s", file=sys.stderr, flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    duration = time.perf_counter() - began
    report = {
        "suite": suite,
        "date": started.date().isoformat(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "quick": args.quick,
        "command": shlex.join(["python", "-m", "benchmarks", *arguments]),
        "git": _git(),
        "machine": machine,
        "benchmarks": results,
    }
    stem = f"{report['date']}-{suite}" + ("-quick" if args.quick else "")
    json_path, md_path = write_report(report, args.output_dir, stem)
    print(f"wrote {json_path} and {md_path} ({duration:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
