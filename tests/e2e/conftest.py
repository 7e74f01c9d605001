"""Fixtures of the real-VM tier (``tests/e2e``), built on :mod:`tests.e2e.realvirt`.

- ``tiny_guest`` (module): ``(kernel, initrd)`` of the tiny guest, cached under
  ``tests/e2e/.artifacts``.
- ``libvirt_uri`` (module): URI of a sandboxed root libvirtd of its own, stopped with all its
  guests after the module.
- ``conn``: an open ``libvirt.virConnect`` to that daemon, closed after the test.
- ``cp``: a control plane served on loopback for the enrolment tests
  (:func:`tests.e2e.enrolkit.control_plane`); every agent started under the test's
  ``tmp_path`` is killed afterwards. ``test_enrol_ssh.py`` overrides it with one on its
  namespace's gateway.

Real VMs need root (CI runs as root; the scripts install missing apt packages). Without
root these fixtures skip with the reason, unless ``GOVCLOUD_REQUIRE_E2E=1`` (then they fail).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.enrolkit import ControlPlane, control_plane, kill_agents_under
from tests.e2e.realvirt import ensure_tiny_guest, start_libvirtd, stop_libvirtd, unavailable_reason


def require_real_virt() -> None:
    """Skip (or fail, with ``GOVCLOUD_REQUIRE_E2E=1``) when real VMs cannot run here."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tiny_guest() -> tuple[Path, Path]:
    """``(kernel, initrd)`` of the tiny guest, built once and cached under .artifacts."""
    require_real_virt()
    return ensure_tiny_guest()


@pytest.fixture(scope="module")
def libvirt_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a sandboxed libvirtd, stopped (guests included) after the module."""
    require_real_virt()
    statedir = tmp_path_factory.mktemp("libvirtd")
    try:
        yield start_libvirtd(statedir)
    finally:
        stop_libvirtd(statedir)


@pytest.fixture
def conn(libvirt_uri: str) -> Iterator[Any]:
    """An open ``libvirt.virConnect`` to the sandbox."""
    import libvirt  # only needed (and then required) when the tier runs

    connection = libvirt.open(libvirt_uri)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane; every agent started under ``tmp_path`` is killed afterwards."""
    try:
        with control_plane(tmp_path) as plane:
            yield plane
    finally:
        kill_agents_under(tmp_path)
