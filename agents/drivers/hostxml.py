"""Simulated hosts: the libvirt test driver's ``<node>`` document.

Owns the generation of ``host.xml`` for a simulated host from its configured capacity
(CPUs, memory in KiB) and the ``test:///ABS/PATH/host.xml`` URI that opens it. Each
``open`` of such a URI gets its own private in-memory state, so many simulated hosts fit
in one process; their domains live as long as that connection does.

Foreign (non-govcloud) domains can be declared so tests and demos can show that the
agent leaves them alone. Built with ElementTree, like every XML govcloud writes.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HOST_XML_NAME = "host.xml"
#: The test driver's own namespace for per-domain simulation knobs (``<test:runstate>``).
TEST_DRIVER_NS = "http://libvirt.org/schemas/domain/test/1.0"
_VIR_DOMAIN_SHUTOFF = 5


@dataclass(frozen=True)
class ForeignDomain:
    """A domain on the simulated host that govcloud did not create."""

    name: str
    ram_mib: int = 256
    vcpus: int = 1
    #: False declares it shut off (the test driver otherwise boots every domain it loads).
    running: bool = True


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def host_element(
    *,
    vcpus: int,
    ram_mib: int,
    foreign_domains: tuple[ForeignDomain, ...] | list[ForeignDomain] = (),
    cpu_model: str = "i686",
    mhz: int = 2000,
) -> ET.Element:
    """The ``<node>`` element of a simulated host with ``vcpus`` CPUs and ``ram_mib`` RAM."""
    if vcpus < 1 or ram_mib < 1:
        raise ValueError("a simulated host needs at least 1 vCPU and 1 MiB of RAM")
    node = ET.Element("node")
    cpu = _sub(node, "cpu")
    # The test driver computes cpus = nodes*sockets*cores*threads, capped by <active>.
    for tag, value in (
        ("nodes", 1),
        ("sockets", 1),
        ("cores", vcpus),
        ("threads", 1),
        ("active", vcpus),
        ("total", vcpus),
        ("mhz", mhz),
    ):
        _sub(cpu, tag, str(int(value)))
    _sub(cpu, "model", cpu_model)
    _sub(node, "memory", str(int(ram_mib) * 1024))  # KiB
    for foreign in foreign_domains:
        dom = _sub(node, "domain", type="test")
        _sub(dom, "name", foreign.name)
        _sub(dom, "memory", str(int(foreign.ram_mib)), unit="MiB")
        _sub(dom, "vcpu", str(int(foreign.vcpus)))
        os_el = _sub(dom, "os")
        _sub(os_el, "type", "hvm")
        if not foreign.running:
            _sub(dom, f"{{{TEST_DRIVER_NS}}}runstate", str(_VIR_DOMAIN_SHUTOFF))
    return node


def host_xml(
    *,
    vcpus: int,
    ram_mib: int,
    foreign_domains: tuple[ForeignDomain, ...] | list[ForeignDomain] = (),
) -> str:
    """:func:`host_element` serialized."""
    element = host_element(vcpus=vcpus, ram_mib=ram_mib, foreign_domains=foreign_domains)
    ET.indent(element)
    return ET.tostring(element, encoding="unicode") + "\n"


def host_uri(path: Path) -> str:
    """The libvirt URI opening ``path`` with the test driver (``test:///abs/path``)."""
    absolute = path.resolve()
    return f"test://{absolute.as_posix()}"


def write_host_xml(
    state_dir: Path,
    *,
    vcpus: int,
    ram_mib: int,
    foreign_domains: tuple[ForeignDomain, ...] | list[ForeignDomain] = (),
) -> str:
    """Write ``<state_dir>/host.xml`` (atomically) and return the URI that opens it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / HOST_XML_NAME
    tmp = path.with_suffix(".xml.tmp")
    tmp.write_text(
        host_xml(vcpus=vcpus, ram_mib=ram_mib, foreign_domains=foreign_domains),
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return host_uri(path)
