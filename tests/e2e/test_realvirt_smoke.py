"""Smoke test of the real-VM tier: a tiny guest boots under a real, sandboxed libvirtd.

Fixtures (``conn``, ``tiny_guest``) come from ``tests/e2e/conftest.py``. Needs root (CI runs
as root); the helper scripts install missing apt packages. Without root the test is skipped
with the reason, unless ``GOVCLOUD_REQUIRE_E2E=1`` (then it fails).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.realvirt import MARKER, tiny_guest_domain_xml, wait_for_marker

pytestmark = pytest.mark.e2e

BOOT_TIMEOUT_S = 120.0


def test_tiny_guest_boots_and_runs(
    conn: Any, tiny_guest: tuple[Path, Path], tmp_path: Path
) -> None:
    import libvirt

    kernel, initrd = tiny_guest
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    serial_log = tmp_path / f"{name}.serial.log"
    xml = tiny_guest_domain_xml(name, uuid.uuid4(), kernel, initrd, serial_log)

    dom = conn.defineXML(xml)
    try:
        dom.create()
        waited = wait_for_marker(serial_log, timeout=BOOT_TIMEOUT_S)
        print(f"{MARKER} after {waited:.1f}s")

        state, _reason = dom.state()
        assert state == libvirt.VIR_DOMAIN_RUNNING
        live = ET.fromstring(dom.XMLDesc(0))
        assert live.get("type") == "qemu"
        assert live.findtext("os/cmdline") == "console=ttyS0 panic=-1"
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()

    assert name not in {d.name() for d in conn.listAllDomains()}
