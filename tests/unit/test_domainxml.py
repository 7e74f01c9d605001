"""Domain and host XML: structure, escaping (Hypothesis) and metadata round trips."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.drivers.base import InstanceMetadata
from agents.drivers.domainxml import (
    METADATA_NS,
    DomainXmlOptions,
    InvalidDomainSpec,
    build_domain_xml,
    metadata_from_domain_xml,
    metadata_xml,
    parse_metadata,
    serial_log_path,
)
from agents.drivers.hostxml import TEST_DRIVER_NS, ForeignDomain, host_xml
from agents.protocol.v1 import Assignment, DesiredState, ImageSpec
from controlplane.domain.image import ImageFormat

#: A format the protocol refuses, passed unvalidated to test the driver's own check.
VMDK: Any = "vmdk"

IID = "0b7e2f8e-6a43-4f5e-9c1d-3e8f00c0ffee"
NS = f"{{{METADATA_NS}}}"
KERNEL = ImageSpec(
    name="tiny",
    format="kernel",
    kernel_path="/img/vmlinuz",
    initrd_path="/img/initrd.img",
    cmdline="console=ttyS0",
)
QCOW2 = ImageSpec(name="d12", format="qcow2", path="/img/d12.qcow2")


def make(image: ImageSpec = KERNEL, **changes: Any) -> Assignment:
    values: dict[str, object] = {
        "instance_id": IID,
        "name": "web-1",
        "vcpus": 2,
        "ram_mib": 1024,
        "disk_gib": 10,
        "image": image,
        "desired": DesiredState.RUNNING,
        "reboot_seq": 0,
        "create": True,
    }
    values.update(changes)
    valid = Assignment.model_validate({**values, "instance_id": IID})
    # The driver re-checks ids the protocol already validates (defence in depth), so
    # bypass validation to hand it an invalid one.
    return valid.model_copy(update={"instance_id": values["instance_id"]})


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


# -- structure -------------------------------------------------------------------------------


def test_identity_resources_and_metadata() -> None:
    dom = parse(build_domain_xml(make(reboot_seq=4), DomainXmlOptions()))
    assert dom.get("type") == "test"
    assert dom.findtext("name") == f"gc-{IID}"
    assert dom.findtext("uuid") == IID
    assert dom.findtext("title") == "web-1"
    assert (dom.findtext("memory"), dom.find("memory").get("unit")) == ("1024", "MiB")  # type: ignore[union-attr]
    assert dom.findtext("vcpu") == "2"
    meta = dom.find(f"metadata/{NS}instance")
    assert meta is not None
    assert [meta.findtext(f"{NS}{k}") for k in ("id", "name", "reboot_seq")] == [IID, "web-1", "4"]


def test_kernel_image_boots_directly() -> None:
    dom = parse(build_domain_xml(make(KERNEL), DomainXmlOptions(domain_type="qemu")))
    assert dom.get("type") == "qemu"
    assert dom.findtext("os/kernel") == "/img/vmlinuz"
    assert dom.findtext("os/initrd") == "/img/initrd.img"
    assert dom.findtext("os/cmdline") == "console=ttyS0"
    assert dom.find("devices/disk") is None


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_disk_image_is_the_root_disk(fmt: str) -> None:
    image = ImageSpec(name="d12", format=fmt, path=f"/img/d12.{fmt}")
    dom = parse(build_domain_xml(make(image), DomainXmlOptions(domain_type="kvm")))
    disk = dom.find("devices/disk")
    assert disk is not None
    assert (disk.get("type"), disk.get("device")) == ("file", "disk")
    assert disk.find("driver").get("type") == fmt  # type: ignore[union-attr]
    assert disk.find("source").get("file") == f"/img/d12.{fmt}"  # type: ignore[union-attr]
    assert dom.find("os/kernel") is None


def test_serial_console_goes_to_the_state_dir(tmp_path: Path) -> None:
    xml = build_domain_xml(make(), DomainXmlOptions(serial_dir=tmp_path / "serial"))
    source = parse(xml).find("devices/serial/source")
    assert source is not None
    assert source.get("path") == str(tmp_path / "serial" / f"gc-{IID}.log")
    assert serial_log_path(tmp_path, IID).parent == tmp_path
    assert parse(build_domain_xml(make(), DomainXmlOptions())).find("devices/serial") is None


def test_qemu_options() -> None:
    options = DomainXmlOptions(domain_type="qemu", arch="x86_64", tcg_tb_cache_mib=16)
    dom = parse(build_domain_xml(make(), options))
    assert dom.find("os/type").get("arch") == "x86_64"  # type: ignore[union-attr]
    assert dom.findtext("features/tcg/tb-cache") == "16"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": ImageSpec.model_construct(name="x", format=VMDK, path="/x.vmdk")}, "vmdk"),
        ({"image": ImageSpec(name="x", format="qcow2")}, "no path"),
        ({"image": ImageSpec(name="x", format="kernel")}, "no kernel_path"),
        ({"instance_id": "web-1"}, "not a UUID"),
        ({"instance_id": IID.upper()}, "canonical"),
    ],
)
def test_invalid_specs_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDomainSpec, match=message):
        build_domain_xml(make(**change), DomainXmlOptions())


def test_unknown_domain_type_is_refused() -> None:
    with pytest.raises(InvalidDomainSpec, match="domain type"):
        build_domain_xml(make(), DomainXmlOptions(domain_type="xen"))  # type: ignore[arg-type]


# -- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a<b", "a&b", "a'b", 'a"b', "<script>", "x y", "../etc"])
def test_names_with_markup_never_reach_the_xml(name: str) -> None:
    with pytest.raises(ValidationError):
        make(name=name)


@pytest.mark.parametrize("path", ["/img/a<b", "/img/a&b", "/img/'x'", "/img/../etc", "rel/x"])
def test_paths_with_markup_never_reach_the_xml(path: str) -> None:
    with pytest.raises(ValidationError):
        ImageSpec(name="x", format="qcow2", path=path)


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)
segments = st.from_regex(r"[A-Za-z0-9._+-]{1,20}", fullmatch=True).filter(lambda s: s != "..")
paths = st.lists(segments, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
texts = st.text(max_size=200).filter(lambda t: not re.search(r"[\x00-\x1f\x7f]", t))
_XML_OK = re.compile(r"[\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


@settings(max_examples=150, deadline=None)
@given(
    name=names,
    kernel=paths,
    initrd=paths,
    cmdline=texts,
    instance_id=st.uuids().map(str),
    seq=st.integers(0, 2**31),
    serial=paths,
)
def test_any_valid_assignment_gives_well_formed_xml(
    name: str,
    kernel: str,
    initrd: str,
    cmdline: str,
    instance_id: str,
    seq: int,
    serial: str,
) -> None:
    image = ImageSpec(
        name="img", format="kernel", kernel_path=kernel, initrd_path=initrd, cmdline=cmdline
    )
    a = make(image, name=name, instance_id=instance_id, reboot_seq=seq)
    options = DomainXmlOptions(domain_type="qemu", serial_dir=Path(serial))
    if not _XML_OK.fullmatch(cmdline):  # e.g. U+FFFE or a lone surrogate: not XML at all
        with pytest.raises(InvalidDomainSpec):
            build_domain_xml(a, options)
        return
    dom = parse(build_domain_xml(a, options))
    assert dom.findtext("title") == name
    assert dom.findtext("os/kernel") == kernel
    assert dom.findtext("os/initrd") == initrd
    assert (dom.findtext("os/cmdline") or "") == cmdline
    assert dom.findtext("name") == f"gc-{instance_id}"
    assert metadata_from_domain_xml(ET.tostring(dom, encoding="unicode"), instance_id="?") == (
        InstanceMetadata(instance_id, name, seq)
    )


@settings(max_examples=200, deadline=None)
@given(hostile=st.text(max_size=80))
@example(hostile="a\r")
@example(hostile="a\n")
@example(hostile="</title><name>evil</name>")
@example(hostile="x]]><!--&amp;\"'")
@example(hostile="\ufffe")
def test_even_unvalidated_input_cannot_break_the_document(hostile: str) -> None:
    # Defence in depth: bypass pydantic entirely (model_construct) with arbitrary text.
    image = ImageSpec.model_construct(
        name="img", format=ImageFormat.KERNEL, kernel_path="/k", initrd_path=None, cmdline=hostile
    )
    a = make().model_copy(update={"name": hostile or "x", "image": image})
    try:
        xml = build_domain_xml(a, DomainXmlOptions())
    except InvalidDomainSpec:
        assert not _XML_OK.fullmatch(hostile)
        return
    dom = parse(xml)
    assert dom.findtext("title") == (hostile or "x")
    assert len(dom.findall("name")) == 1
    assert [child.tag for child in dom.find("os")] == ["type", "kernel"] + (  # type: ignore[union-attr]
        ["cmdline"] if hostile else []
    )


# -- metadata --------------------------------------------------------------------------------


@given(name=names, seq=st.integers(0, 2**40))
def test_metadata_round_trips(name: str, seq: int) -> None:
    meta = InstanceMetadata(str(uuid.UUID(int=seq)), name, seq)
    assert parse_metadata(metadata_xml(meta), instance_id="other") == meta


def test_metadata_defaults_when_missing_or_garbled() -> None:
    assert parse_metadata("<instance/>", instance_id=IID) == InstanceMetadata(IID, "", 0)
    assert parse_metadata("not xml", instance_id=IID) == InstanceMetadata(IID, "", 0)
    garbled = "<instance><reboot_seq>many</reboot_seq></instance>"
    assert parse_metadata(garbled, instance_id=IID).reboot_seq == 0
    assert metadata_from_domain_xml("<domain/>", instance_id=IID) == InstanceMetadata(IID, "", 0)


def test_metadata_for_set_metadata_is_bare() -> None:
    root = parse(metadata_xml(InstanceMetadata(IID, "web-1", 2)))
    assert root.tag == "instance"  # libvirt applies the namespace itself
    assert root.findtext("reboot_seq") == "2"


# -- simulated host ------------------------------------------------------------------------------


def test_host_xml_has_capacity_and_foreign_domains() -> None:
    node = parse(
        host_xml(
            vcpus=12,
            ram_mib=32768,
            foreign_domains=[ForeignDomain("a"), ForeignDomain("b", running=False)],
        )
    )
    assert node.findtext("cpu/active") == "12"
    assert node.findtext("cpu/total") == "12"
    assert node.findtext("memory") == str(32768 * 1024)  # KiB
    domains = node.findall("domain")
    assert [d.findtext("name") for d in domains] == ["a", "b"]
    assert domains[0].find(f"{{{TEST_DRIVER_NS}}}runstate") is None
    assert domains[1].findtext(f"{{{TEST_DRIVER_NS}}}runstate") == "5"


def test_host_xml_needs_some_capacity() -> None:
    with pytest.raises(ValueError, match="at least"):
        host_xml(vcpus=0, ram_mib=1024)
