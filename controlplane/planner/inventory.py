"""Machine-room inventory: the existing servers and VMs to consolidate, as CSV.

One row per workload::

    room,region,ministry,agency,name,kind,vcpus,ram_gib,disk_gib,cpu_util_pct,power_w
    moi-room-001,north,moi,nfa,fire-dispatch-01,physical,16,64,2000,7.5,310
    moi-room-001,north,moi,nfa,fire-gis-02,vm,4,8,100,12,

``region``, ``kind`` (``vm`` or ``physical``; default ``vm``), ``cpu_util_pct`` (average
CPU use, 0-100; default 10) and ``power_w`` (measured draw; blank when unknown) may be left
out; other columns are ignored, so a spreadsheet export can be used as it is. Parsing takes
the text (the CLI reads the file) and reports every bad row with file, line, column and
value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controlplane.domain.names import Code, Name
from controlplane.planner.problems import PlanInputError, Problem

REQUIRED: tuple[str, ...] = ("room", "ministry", "agency", "name", "vcpus", "ram_gib", "disk_gib")
OPTIONAL: tuple[str, ...] = ("region", "kind", "cpu_util_pct", "power_w")
#: Column order of :func:`to_csv`.
COLUMNS: tuple[str, ...] = (
    "room",
    "region",
    "ministry",
    "agency",
    "name",
    "kind",
    "vcpus",
    "ram_gib",
    "disk_gib",
    "cpu_util_pct",
    "power_w",
)
#: Stop collecting problems after this many (a wrong file would list every row).
MAX_PROBLEMS = 50


class WorkloadKind(StrEnum):
    """A physical server (moved as a VM of the same size) or an existing VM."""

    VM = "vm"
    PHYSICAL = "physical"


class Workload(BaseModel):
    """One server or VM in an existing machine room."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room: Name
    region: Code | None = None
    ministry: Code
    agency: Code
    name: Name
    kind: WorkloadKind = WorkloadKind.VM
    vcpus: int = Field(ge=1, le=4096)
    ram_gib: float = Field(gt=0, le=65536)
    disk_gib: int = Field(ge=0, le=10_000_000)
    cpu_util_pct: float = Field(10.0, ge=0, le=100)
    power_w: float | None = Field(None, ge=0, le=100_000)

    @property
    def ram_mib(self) -> int:
        """RAM in MiB (what a govcloud flavor and host count in)."""
        return max(1, round(self.ram_gib * 1024))


def parse_inventory(text: str, filename: str) -> list[Workload]:
    """Every workload of an inventory CSV ``text``; :class:`PlanInputError` lists the
    problems (file, line, column, value)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise PlanInputError(
            filename,
            [
                Problem(
                    filename,
                    1,
                    "",
                    f"missing column(s) {', '.join(missing)}; the header must name "
                    f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})",
                )
            ],
        )
    reader.fieldnames = header
    wanted = set(REQUIRED) | set(OPTIONAL)
    workloads: list[Workload] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        if len(problems) >= MAX_PROBLEMS:
            break
        fields = {
            k: v.strip() for k, v in row.items() if k in wanted and v is not None and v.strip()
        }
        try:
            workload = Workload.model_validate(fields)
        except ValidationError as exc:
            for err in exc.errors():
                column = ".".join(str(p) for p in err.get("loc", ()))
                message = str(err.get("msg", "invalid"))
                if err.get("type") != "missing":
                    message = f"{message} (got {err.get('input')!r})"
                problems.append(Problem(filename, line, column, message))
            continue
        key = (workload.room, workload.name)
        if key in seen:
            problems.append(
                Problem(
                    filename,
                    line,
                    "name",
                    f"{workload.name!r} appears twice in room {workload.room!r} "
                    f"(first on line {seen[key]})",
                )
            )
            continue
        seen[key] = line
        workloads.append(workload)
    if problems:
        raise PlanInputError(filename, problems)
    if not workloads:
        raise PlanInputError(filename, [Problem(filename, 1, "", "no workloads in the file")])
    return workloads


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def to_csv(workloads: Iterable[Workload]) -> str:
    """The inventory as CSV text (header first), readable by :func:`parse_inventory`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for w in workloads:
        writer.writerow(
            [
                w.room,
                w.region or "",
                w.ministry,
                w.agency,
                w.name,
                w.kind.value,
                w.vcpus,
                _number(w.ram_gib),
                w.disk_gib,
                _number(w.cpu_util_pct),
                _number(w.power_w),
            ]
        )
    return out.getvalue()
