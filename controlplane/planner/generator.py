"""A realistic, seeded machine-room inventory: G-Cloud's ~280 rooms and ~20,000 workloads.

The ministries and agencies are those of the programme (Executive Yuan, Interior,
Transportation and Communications, Health and Welfare, Education, Culture, Environmental
Protection, Agriculture, Economic Affairs), held here as data. Rooms are shared among the
ministries in fixed proportions and their sizes are heavy-tailed (a few large rooms, many
small ones), as in a real estate of agency machine rooms. Workloads are a mix of old
physical servers (bigger, mostly idle, often with a measured power draw) and VMs (the
usual flavor mix); average CPU use is low, a few percent to a few tens of percent.

The same ``(rooms, workloads, seed)`` always gives the same inventory.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from controlplane.domain.errors import InvalidRequest
from controlplane.planner.inventory import Workload, WorkloadKind


@dataclass(frozen=True)
class Ministry:
    """A ministry, its share of the machine rooms, and its agencies (code, name)."""

    code: str
    name: str
    room_share: int
    agencies: tuple[tuple[str, str], ...]


MINISTRIES: tuple[Ministry, ...] = (
    Ministry(
        "ey",
        "Executive Yuan / RDEC",
        25,
        (("rdec", "RDEC"), ("cepd", "Council for Economic Planning")),
    ),
    Ministry(
        "moi",
        "Ministry of the Interior",
        40,
        (
            ("moi-hq", "Ministry of the Interior"),
            ("nfa", "National Fire Agency"),
            ("npa", "National Police Agency"),
        ),
    ),
    Ministry(
        "motc",
        "Ministry of Transportation and Communications",
        35,
        (
            ("motc-hq", "Ministry of Transportation and Communications"),
            ("thb", "Directorate General of Highways"),
            ("iot", "Institute of Transportation"),
        ),
    ),
    Ministry(
        "mohw",
        "Ministry of Health and Welfare",
        35,
        (
            ("mohw-hq", "Ministry of Health and Welfare"),
            ("cdc", "Centers for Disease Control"),
            ("hpa", "Health Promotion Administration"),
        ),
    ),
    Ministry(
        "moe",
        "Ministry of Education",
        45,
        (
            ("moe-hq", "Ministry of Education"),
            ("naer", "National Academy for Educational Research"),
        ),
    ),
    Ministry(
        "moc",
        "Ministry of Culture",
        20,
        (("moc-hq", "Ministry of Culture"), ("nmh", "National Museum of History")),
    ),
    Ministry(
        "epa",
        "Environmental Protection Administration",
        20,
        (
            ("epa-hq", "Environmental Protection Administration"),
            ("emd", "Environmental Monitoring Division"),
        ),
    ),
    Ministry(
        "coa",
        "Council of Agriculture",
        30,
        (("coa-hq", "Council of Agriculture"), ("afa", "Agriculture and Food Agency")),
    ),
    Ministry(
        "moea",
        "Ministry of Economic Affairs",
        30,
        (
            ("moea-hq", "Ministry of Economic Affairs"),
            ("doit", "Department of Industrial Technology"),
        ),
    ),
)

#: Regions of Taiwan and their share of the machine rooms.
REGIONS: tuple[tuple[str, int], ...] = (("north", 45), ("central", 25), ("south", 22), ("east", 8))
#: (vCPU, RAM GiB) of VMs and their weights: mostly small and medium.
VM_SIZES: tuple[tuple[tuple[int, int], int], ...] = (
    ((1, 1), 5),
    ((1, 2), 10),
    ((2, 4), 20),
    ((2, 8), 10),
    ((4, 8), 20),
    ((4, 16), 15),
    ((8, 16), 8),
    ((8, 32), 7),
    ((16, 64), 4),
    ((32, 128), 1),
)
#: (cores, RAM GiB) of physical servers and their weights.
PHYSICAL_SIZES: tuple[tuple[tuple[int, int], int], ...] = (
    ((4, 8), 10),
    ((8, 16), 20),
    ((8, 32), 20),
    ((12, 48), 10),
    ((16, 64), 20),
    ((24, 96), 8),
    ((32, 128), 8),
    ((48, 256), 3),
    ((64, 512), 1),
)
VM_DISKS: tuple[tuple[int, int], ...] = (
    (20, 10),
    (40, 25),
    (80, 20),
    (100, 20),
    (200, 12),
    (500, 8),
    (1000, 5),
)
PHYSICAL_DISKS: tuple[tuple[int, int], ...] = (
    (146, 10),
    (300, 25),
    (600, 30),
    (1200, 20),
    (2400, 10),
    (4800, 5),
)
ROLES: tuple[str, ...] = (
    "web", "ap", "db", "gis", "mail", "file", "dns", "erp", "backup", "batch", "report", "portal",
)  # fmt: skip
#: Share of workloads that are physical servers, and of those with a measured power draw.
PHYSICAL_SHARE = 0.35
METERED_SHARE = 0.7


def _pick(rng: random.Random, table: tuple[tuple[tuple[int, int], int], ...]) -> tuple[int, int]:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _pick1(rng: random.Random, table: tuple[tuple[int, int], ...]) -> int:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _apportion(total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights``, each at least
    ``minimum`` (largest remainder method)."""
    n = len(weights)
    free = total - minimum * n
    scale = free / sum(weights)
    raw = [w * scale for w in weights]
    parts = [math.floor(r) for r in raw]
    order = sorted(range(n), key=lambda i: (parts[i] - raw[i], i))
    for i in order[: free - sum(parts)]:
        parts[i] += 1
    return [minimum + p for p in parts]


def _room_ministries(rooms: int) -> list[Ministry]:
    counts = _apportion(rooms, [float(m.room_share) for m in MINISTRIES], 0)
    out: list[Ministry] = []
    for ministry, count in zip(MINISTRIES, counts, strict=True):
        out += [ministry] * count
    return out


def _workload(
    rng: random.Random, room: str, region: str, ministry: str, agency: str, i: int
) -> Workload:
    physical = rng.random() < PHYSICAL_SHARE
    if physical:
        vcpus, ram = _pick(rng, PHYSICAL_SIZES)
        disk = _pick1(rng, PHYSICAL_DISKS)
        util = min(100.0, round(rng.betavariate(1.3, 10.0) * 100, 1))
        power: float | None = None
        if rng.random() < METERED_SHARE:
            busy = util / 100
            watts = (110 + 3.0 * vcpus + ram * 0.25) + busy * (120 + 5.0 * vcpus)
            power = float(round(watts * rng.uniform(0.85, 1.15)))
    else:
        vcpus, ram = _pick(rng, VM_SIZES)
        disk = _pick1(rng, VM_DISKS)
        util = min(100.0, round(rng.betavariate(1.5, 7.0) * 100, 1))
        power = None
    role = ROLES[rng.randrange(len(ROLES))]
    return Workload(
        room=room,
        region=region,
        ministry=ministry,
        agency=agency,
        name=f"{agency}-{role}-{i:04d}",
        kind=WorkloadKind.PHYSICAL if physical else WorkloadKind.VM,
        vcpus=vcpus,
        ram_gib=float(ram),
        disk_gib=disk,
        cpu_util_pct=util,
        power_w=power,
    )


def generate_inventory(rooms: int = 280, workloads: int = 20_000, seed: int = 1) -> list[Workload]:
    """``workloads`` workloads in ``rooms`` rooms, the same for the same arguments."""
    if not 1 <= rooms <= 100_000:
        raise InvalidRequest(
            f"rooms must be 1..100000 (got {rooms})", field="rooms", value=rooms, limit=100_000
        )
    if not rooms <= workloads <= 10_000_000:
        raise InvalidRequest(
            f"workloads must be between rooms ({rooms}) and 10000000 (got {workloads})",
            field="workloads",
            value=workloads,
            limit=rooms,
        )
    rng = random.Random(seed)  # noqa: S311 (a reproducible simulation, not a secret)
    owners = _room_ministries(rooms)
    rng.shuffle(owners)
    minimum = 3 if workloads >= 3 * rooms else 1
    sizes = _apportion(workloads, [rng.lognormvariate(0.0, 1.0) for _ in range(rooms)], minimum)
    regions = [r for r, _ in REGIONS]
    region_weights = [w for _, w in REGIONS]
    out: list[Workload] = []
    for index, (ministry, size) in enumerate(zip(owners, sizes, strict=True)):
        region = rng.choices(regions, weights=region_weights)[0]
        agency = ministry.agencies[rng.randrange(len(ministry.agencies))][0]
        room = f"{agency}-room-{index + 1:03d}"
        out += [_workload(rng, room, region, ministry.code, agency, i + 1) for i in range(size)]
    return out
