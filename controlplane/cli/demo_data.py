"""What ``govcloud demo`` builds: realistic sample data from the G-Cloud programme.

Data only (no I/O): the data centres and their simulated hosts, the catalogue (flavors,
images), the organisation tree (Executive Yuan -> ministries -> agencies -> projects, with
the Ministry of Economic Affairs' Cloud Open Lab and its vendors' PoC projects), the users
(a ministry-admin per ministry and a root auditor) and the servers each ministry asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The root organisation (the Executive Yuan), created by the control plane itself.
ROOT = "gov"


@dataclass(frozen=True)
class HostSpec:
    """One simulated hypervisor: a ``govcloud-agent`` on the libvirt test driver."""

    vcpus: int
    ram_mib: int
    disk_gib: int
    traits: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataCentreSpec:
    """A consolidated data centre and the shape of its hosts."""

    code: str
    name: str
    location: str
    host: HostSpec


DATACENTRES: tuple[DataCentreSpec, ...] = (
    DataCentreSpec(
        "tpe-1",
        "Taipei 1 (Executive Yuan central DC)",
        "Taipei",
        HostSpec(32, 65536, 4000, ("ssd",)),
    ),
    DataCentreSpec(
        "txg-1",
        "Taichung 1 (central Taiwan DC)",
        "Taichung",
        HostSpec(24, 49152, 3000, ("ssd",)),
    ),
    DataCentreSpec("khh-1", "Kaohsiung 1 (southern DC)", "Kaohsiung", HostSpec(16, 32768, 2000)),
)

#: name -> (vCPUs, RAM MiB, disk GiB, description)
FLAVORS: dict[str, tuple[int, int, int, str]] = {
    "m1.tiny": (1, 512, 5, "1 vCPU, 512 MiB"),
    "m1.small": (1, 2048, 20, "1 vCPU, 2 GiB"),
    "m1.medium": (2, 4096, 40, "2 vCPU, 4 GiB"),
    "m1.large": (4, 8192, 80, "4 vCPU, 8 GiB"),
    "m1.xlarge": (8, 16384, 160, "8 vCPU, 16 GiB"),
    # Bigger than any host in the demo: the request stays PENDING with the reason.
    "r1.mega": (64, 262144, 2000, "in-memory analytics, 256 GiB"),
}

IMAGE_DIR = "/var/lib/govcloud/images"

#: name -> (file name, size MiB, min RAM MiB, min disk GiB, description)
IMAGES: dict[str, tuple[str, int, int, int, str]] = {
    "ubuntu-22.04": ("ubuntu-22.04-server-cloudimg-amd64.qcow2", 640, 512, 10, "Ubuntu 22.04 LTS"),
    "rocky-9": ("Rocky-9-GenericCloud-Base.latest.x86_64.qcow2", 1100, 1024, 10, "Rocky Linux 9"),
    "debian-12": ("debian-12-genericcloud-amd64.qcow2", 420, 512, 8, "Debian 12"),
    "cirros-0.6": ("cirros-0.6.2-x86_64-disk.img", 21, 64, 1, "CirrOS test image"),
}

#: Ministries under the Executive Yuan: code -> (name, {agency: (name, {project: name})}).
ORG_TREE: dict[str, tuple[str, dict[str, tuple[str, dict[str, str]]]]] = {
    "ey": (
        "Executive Yuan / RDEC",
        {
            "rdec": (
                "Research, Development and Evaluation Commission",
                {"gov-portal": "e-Gov portal"},
            ),
            "cepd": (
                "Council for Economic Planning and Development",
                {"econ-stats": "Economic statistics"},
            ),
        },
    ),
    "moi": (
        "Ministry of the Interior",
        {
            "nfa": ("National Fire Agency", {"disaster-cloud": "Disaster relief cloud (防救災雲)"}),
            "npa": ("National Police Agency", {"police-cloud": "Police cloud (警政雲)"}),
        },
    ),
    "motc": (
        "Ministry of Transportation and Communications",
        {
            "dgh": (
                "Directorate General of Highways",
                {"traffic-info": "Traffic information (交通雲)"},
            ),
            "iot": ("Institute of Transportation", {"transport-poc": "Transport cloud PoC"}),
        },
    ),
    "mohw": (
        "Ministry of Health and Welfare",
        {
            "cdc": (
                "Centers for Disease Control",
                {"disease-watch": "Disease surveillance (健康雲)"},
            ),
            "hpa": ("Health Promotion Administration", {"health-promo": "Health promotion"}),
        },
    ),
    "moe": (
        "Ministry of Education",
        {
            "naer": (
                "National Academy for Educational Research",
                {"edu-cloud": "Education cloud (教育雲)"},
            )
        },
    ),
    "moc": (
        "Ministry of Culture",
        {"nmh": ("National Museum of History", {"culture-archive": "Culture cloud (文化雲)"})},
    ),
    "epa": (
        "Environmental Protection Administration",
        {
            "emd": (
                "Environmental Monitoring Division",
                {"air-quality": "Environment cloud (環資雲)"},
            )
        },
    ),
    "coa": (
        "Council of Agriculture",
        {"afa": ("Agriculture and Food Agency", {"food-trace": "Food traceability cloud"})},
    ),
    "moea": (
        "Ministry of Economic Affairs",
        {
            "doit": (
                "Department of Industrial Technology",
                {"industry-data": "Industry statistics"},
            ),
            "open-lab": (
                "Cloud Open Lab (PoC -> Verification -> Certification)",
                {
                    "lab-cht": "Chunghwa Telecom PoC",
                    "lab-fet": "Far EasTone PoC",
                    "lab-twm": "Taiwan Mobile PoC",
                    "lab-quanta": "Quanta PoC",
                    "lab-asus": "ASUS PoC",
                    "lab-google": "Google PoC",
                    "lab-microsoft": "Microsoft PoC",
                    "lab-vmware": "VMware PoC",
                },
            ),
        },
    ),
}

AUDITOR = "audit-office"


def admin_of(ministry: str) -> str:
    """The demo's ministry-admin user of ``ministry``."""
    return f"{ministry}-admin"


@dataclass(frozen=True)
class ServerSpec:
    """A server a ministry asks for (``dc`` pins it to one data centre)."""

    name: str
    ministry: str
    project: str
    flavor: str
    image: str
    dc: str | None = None

    @property
    def placeable(self) -> bool:
        """False for the request that is deliberately too big for any host."""
        return self.flavor != "r1.mega"


def _servers() -> tuple[ServerSpec, ...]:
    s = ServerSpec
    return (
        s("tgos-web-01", "ey", "gov-portal", "m1.medium", "ubuntu-22.04", "tpe-1"),
        s("stats-db-01", "ey", "econ-stats", "m1.large", "rocky-9"),
        s("dr-web-01", "moi", "disaster-cloud", "m1.medium", "ubuntu-22.04", "khh-1"),
        s("dr-web-02", "moi", "disaster-cloud", "m1.medium", "ubuntu-22.04", "txg-1"),
        s("dr-db-01", "moi", "disaster-cloud", "m1.xlarge", "rocky-9", "tpe-1"),
        s("police-app-01", "moi", "police-cloud", "m1.large", "rocky-9", "tpe-1"),
        s("tis-api-01", "motc", "traffic-info", "m1.small", "debian-12"),
        s("tis-api-02", "motc", "traffic-info", "m1.small", "debian-12"),
        s("tis-etl-01", "motc", "traffic-info", "m1.xlarge", "ubuntu-22.04", "txg-1"),
        s("cdc-web-01", "mohw", "disease-watch", "m1.medium", "ubuntu-22.04"),
        s("cdc-db-01", "mohw", "disease-watch", "m1.large", "rocky-9", "tpe-1"),
        s("genome-analytics-01", "mohw", "disease-watch", "r1.mega", "rocky-9"),
        s("edu-lms-01", "moe", "edu-cloud", "m1.medium", "ubuntu-22.04"),
        s("edu-lms-02", "moe", "edu-cloud", "m1.medium", "ubuntu-22.04"),
        s("museum-archive-01", "moc", "culture-archive", "m1.large", "debian-12", "txg-1"),
        s("aq-ingest-01", "epa", "air-quality", "m1.small", "debian-12", "khh-1"),
        s("food-poc-01", "coa", "food-trace", "m1.small", "cirros-0.6"),
        s("food-poc-02", "coa", "food-trace", "m1.small", "cirros-0.6"),
        s("food-poc-03", "coa", "food-trace", "m1.small", "cirros-0.6"),
        s("cht-stress-01", "moea", "lab-cht", "m1.xlarge", "ubuntu-22.04"),
        s("quanta-bench-01", "moea", "lab-quanta", "m1.large", "rocky-9"),
        s("asus-bench-01", "moea", "lab-asus", "m1.large", "rocky-9"),
        s("vmware-func-01", "moea", "lab-vmware", "m1.medium", "debian-12"),
    )


SERVERS: tuple[ServerSpec, ...] = _servers()


# -- the Lab story: a vendor trial for a ministry, a scenario run, a sizing report ------------

#: The vendor, its engineer and the Lab's operator.
LAB_VENDOR = ("cht", "Chunghwa Telecom")
LAB_VENDOR_USER = "cht-engineer"
LAB_OPERATOR = "lab-operator"
#: Chunghwa Telecom proves an online dictionary service for the Ministry of Education.
LAB_TRIAL = {"name": "dictionary-poc", "ministry": "moe", "template": "poc-small"}
#: A short peak-hour scenario: three web servers spread over hosts, one database.
LAB_SCENARIO = {
    "name": "dict-peak",
    "description": "peak-hour dictionary look-ups",
    "duration_s": 6,
    "sample_interval_s": 1,
    "provision_timeout_s": 60,
    "groups": [
        {
            "name": "web",
            "flavor": "m1.small",
            "image": "cirros-0.6",
            "count": 3,
            "server_group": "soft-anti-affinity",
            "load": {
                "cpu": {"shape": "sine", "low": 0.25, "high": 0.75, "period_s": 6},
                "ram": {"shape": "ramp", "low": 0.4, "high": 0.6, "period_s": 6},
                "disk": {"shape": "constant", "high": 0.2},
            },
        },
        {
            "name": "db",
            "flavor": "m1.medium",
            "image": "cirros-0.6",
            "count": 1,
            "load": {
                "cpu": {"shape": "square", "low": 0.3, "high": 0.6, "period_s": 4},
                "ram": {"shape": "constant", "high": 0.8},
                "disk": {"shape": "ramp", "low": 0.3, "high": 0.4, "period_s": 6},
            },
        },
    ],
}
#: Sizing targets for the report ("3-year budget, 3-year build, 3-year warranty").
LAB_SIZING = {"growth": 1.3, "headroom": 0.2, "redundancy": "n+1"}
