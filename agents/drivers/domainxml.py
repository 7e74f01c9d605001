"""libvirt domain XML for an instance, and govcloud's ``<metadata>`` inside it.

Owns the mapping Assignment -> ``<domain>`` document. Every document is built with
:mod:`xml.etree.ElementTree` (never by formatting strings), so names, paths and command
lines are escaped by the serializer; on top of that every value is checked against the
XML 1.0 character set (control characters refused), so no input can yield a malformed
document or come back different from what went in.

Conventions: the domain is named ``gc-<instance_id>`` and its ``<uuid>`` *is* the
instance id (a canonical UUID string), so defining the same instance twice updates one
domain instead of creating a second. The metadata element lives in the
:data:`METADATA_NS` namespace and carries the instance id, its name and the last
``reboot_seq`` applied.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents.drivers.base import InstanceMetadata, domain_name
from agents.protocol.v1 import Assignment

#: Namespace of govcloud's element inside ``<metadata>``.
METADATA_NS = "https://govcloud.example/xmlns/instance/1"
#: Prefix libvirt uses for it when it rewrites the element (``virsh dumpxml`` shows it).
METADATA_KEY = "govcloud"

DomainType = Literal["test", "qemu", "kvm"]
DOMAIN_TYPES: tuple[str, ...] = ("test", "qemu", "kvm")
DISK_FORMATS: tuple[str, ...] = ("qcow2", "raw")
KERNEL_FORMAT = "kernel"

# XML 1.0 ``Char`` production without TAB/LF/CR: parsers normalise line ends (a CR would
# come back as LF) and no name, path or command line needs them.
_XML_CHARS = re.compile(r"[\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


class InvalidDomainSpec(ValueError):
    """An assignment cannot be turned into a domain definition (a permanent error)."""


@dataclass(frozen=True)
class DomainXmlOptions:
    """Host-level choices that are not part of an assignment."""

    #: ``test`` for the libvirt test driver, ``qemu`` for software emulation, ``kvm``.
    domain_type: DomainType = "test"
    #: Directory for serial-console logs (``<dir>/gc-<id>.log``); None: no serial device.
    serial_dir: Path | None = None
    #: Guest architecture (e.g. ``x86_64``); None lets libvirt pick the host's.
    arch: str | None = None
    #: Machine type (e.g. ``q35``); None lets libvirt pick its default.
    machine: str | None = None
    #: TCG translation-block cache for ``qemu`` guests, in MiB (saves host RAM).
    tcg_tb_cache_mib: int | None = None
    #: Bus of the root disk.
    disk_bus: str = "virtio"


def _text(value: str, what: str) -> str:
    """``value`` if it can be represented in XML 1.0, else InvalidDomainSpec."""
    if not _XML_CHARS.fullmatch(value):
        raise InvalidDomainSpec(f"{what} contains characters that XML cannot represent")
    return value


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, {k: _text(v, f"{tag} {k}") for k, v in attrs.items()})
    if text is not None:
        child.text = _text(text, tag)
    return child


def canonical_instance_id(instance_id: str) -> str:
    """``instance_id`` if it is a canonical lower-case UUID string, else InvalidDomainSpec."""
    try:
        parsed = uuid.UUID(instance_id)
    except (ValueError, AttributeError, TypeError):
        raise InvalidDomainSpec(f"instance id {instance_id!r} is not a UUID") from None
    if str(parsed) != instance_id:
        raise InvalidDomainSpec(
            f"instance id {instance_id!r} is not a canonical UUID (expected {parsed})"
        )
    return instance_id


def serial_log_path(serial_dir: Path, instance_id: str) -> Path:
    """Where the serial console of ``instance_id`` is written."""
    return serial_dir / f"{domain_name(canonical_instance_id(instance_id))}.log"


def metadata_element(metadata: InstanceMetadata, *, namespaced: bool = True) -> ET.Element:
    """govcloud's ``<instance>`` element.

    Namespaced inside a ``<domain>`` document; bare for libvirt's ``setMetadata``, which
    takes the namespace as separate arguments and applies it itself.
    """
    ns = f"{{{METADATA_NS}}}" if namespaced else ""
    root = ET.Element(f"{ns}instance")
    _sub(root, f"{ns}id", metadata.instance_id)
    _sub(root, f"{ns}name", metadata.name)
    _sub(root, f"{ns}reboot_seq", str(int(metadata.reboot_seq)))
    return root


def metadata_xml(metadata: InstanceMetadata) -> str:
    """The bare metadata element serialized: the string libvirt's ``setMetadata`` wants."""
    return ET.tostring(metadata_element(metadata, namespaced=False), encoding="unicode")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_metadata(xml: str, *, instance_id: str) -> InstanceMetadata:
    """Read govcloud's metadata element (namespaced or as libvirt returns it, bare).

    Missing or unreadable fields fall back to defaults (``reboot_seq`` 0, the given
    ``instance_id``), so a domain defined by hand is still manageable.
    """
    try:
        root = ET.fromstring(xml)  # noqa: S314 - produced by libvirt from our own element
    except ET.ParseError:
        return InstanceMetadata(instance_id=instance_id, name="", reboot_seq=0)
    fields = {_local(child.tag): (child.text or "").strip() for child in root}
    try:
        seq = max(0, int(fields.get("reboot_seq", "0") or "0"))
    except ValueError:
        seq = 0
    return InstanceMetadata(
        instance_id=fields.get("id") or instance_id, name=fields.get("name", ""), reboot_seq=seq
    )


def metadata_from_domain_xml(xml: str, *, instance_id: str) -> InstanceMetadata:
    """Find govcloud's metadata in a whole ``<domain>`` document (``XMLDesc``)."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - produced by libvirt
    except ET.ParseError:
        return InstanceMetadata(instance_id=instance_id, name="", reboot_seq=0)
    found = root.find(f"metadata/{{{METADATA_NS}}}instance")
    if found is None:
        return InstanceMetadata(instance_id=instance_id, name="", reboot_seq=0)
    return parse_metadata(ET.tostring(found, encoding="unicode"), instance_id=instance_id)


def domain_element(assignment: Assignment, options: DomainXmlOptions) -> ET.Element:
    """The ``<domain>`` element for ``assignment`` (see the module docstring)."""
    if options.domain_type not in DOMAIN_TYPES:
        raise InvalidDomainSpec(
            f"domain type {options.domain_type!r} is not one of {', '.join(DOMAIN_TYPES)}"
        )
    instance_id = canonical_instance_id(assignment.instance_id)
    image = assignment.image

    dom = ET.Element("domain", {"type": options.domain_type})
    _sub(dom, "name", domain_name(instance_id))
    _sub(dom, "uuid", instance_id)
    _sub(dom, "title", assignment.name)
    meta = _sub(dom, "metadata")
    meta.append(
        metadata_element(
            InstanceMetadata(
                instance_id=instance_id, name=assignment.name, reboot_seq=assignment.reboot_seq
            )
        )
    )
    _sub(dom, "memory", str(int(assignment.ram_mib)), unit="MiB")
    _sub(dom, "currentMemory", str(int(assignment.ram_mib)), unit="MiB")
    _sub(dom, "vcpu", str(int(assignment.vcpus)), placement="static")

    os_el = _sub(dom, "os")
    type_attrs: dict[str, str] = {}
    if options.arch:
        type_attrs["arch"] = options.arch
    if options.machine:
        type_attrs["machine"] = options.machine
    _sub(os_el, "type", "hvm", **type_attrs)

    disk_path: str | None = None
    if image.format == KERNEL_FORMAT:
        if not image.kernel_path:
            raise InvalidDomainSpec(f"image {image.name!r} has format 'kernel' but no kernel_path")
        _sub(os_el, "kernel", image.kernel_path)
        if image.initrd_path:
            _sub(os_el, "initrd", image.initrd_path)
        if image.cmdline:
            _sub(os_el, "cmdline", image.cmdline)
    elif image.format in DISK_FORMATS:
        if not image.path:
            raise InvalidDomainSpec(f"image {image.name!r} has format {image.format!r} but no path")
        disk_path = image.path
        _sub(os_el, "boot", dev="hd")
    else:
        raise InvalidDomainSpec(
            f"image {image.name!r} has format {image.format!r}; "
            f"expected one of {', '.join((*DISK_FORMATS, KERNEL_FORMAT))}"
        )

    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if options.domain_type == "qemu" and options.tcg_tb_cache_mib:
        tcg = _sub(features, "tcg")
        _sub(tcg, "tb-cache", str(int(options.tcg_tb_cache_mib)), unit="MiB")

    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    if disk_path is not None:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=image.format)
        _sub(disk, "source", file=disk_path)
        _sub(disk, "target", dev="vda", bus=options.disk_bus)
    if options.serial_dir is not None:
        log = serial_log_path(options.serial_dir, instance_id)
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=str(log), append="on")
        _sub(serial, "target", port="0")
    return dom


def build_domain_xml(assignment: Assignment, options: DomainXmlOptions) -> str:
    """The domain document for ``assignment`` as a string (for ``defineXML``)."""
    element = domain_element(assignment, options)
    ET.indent(element)
    return ET.tostring(element, encoding="unicode")
