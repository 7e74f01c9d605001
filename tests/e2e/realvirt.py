"""Helpers for the end-to-end tier: a real tiny guest under a real, sandboxed libvirtd.

The heavy lifting is done by two scripts that can also be run by hand:

- ``scripts/build-tiny-guest.sh OUTDIR`` builds ``OUTDIR/vmlinuz`` (the Debian kernel) and
  ``OUTDIR/initrd.img`` (a ~1 MB busybox initramfs whose ``/init`` prints :data:`MARKER` on
  the serial console and then idles). Cached: a no-op once both files exist.
- ``scripts/libvirtd-sandbox.sh start|stop STATEDIR`` runs a private root ``libvirtd`` in
  its own mount namespace with all of its config/runtime/state under ``STATEDIR``; its URI
  is ``qemu+unix:///system?socket=STATEDIR/run/libvirt-sock``.

Usage from a fixture::

    kernel, initrd = ensure_tiny_guest(ARTIFACTS_DIR)
    uri = start_libvirtd(tmp_path / "libvirtd")
    try:
        conn = libvirt.open(uri)
        xml = tiny_guest_domain_xml("vm1", uuid.uuid4(), kernel, initrd, tmp_path / "vm1.log")
        conn.defineXML(xml).create()
        wait_for_marker(tmp_path / "vm1.log")
    finally:
        stop_libvirtd(tmp_path / "libvirtd")

Guests use ``<domain type='qemu'>`` (TCG): KVM does not work on the CI machines. The
sandboxed daemon runs qemu as root without relabelling, so kernel, initrd and serial log
may live anywhere root can reach (including pytest's root-only ``tmp_path``).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from pathlib import Path

#: The line the tiny guest's ``/init`` prints on its console once user space runs.
MARKER = "GOVCLOUD-GUEST-BOOTED"
#: Below this the Debian kernel cannot unpack the initramfs and boot.
MIN_MEMORY_MIB = 96

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts"
BUILD_SCRIPT = SCRIPTS_DIR / "build-tiny-guest.sh"
SANDBOX_SCRIPT = SCRIPTS_DIR / "libvirtd-sandbox.sh"
#: Default (gitignored) place for the kernel and initramfs.
ARTIFACTS_DIR = Path(__file__).resolve().parent / ".artifacts"

StrPath = str | os.PathLike[str]


class RealVirtError(RuntimeError):
    """A helper script failed; the message carries its output."""


def _run(args: list[str], timeout: float) -> str:
    """Run a helper script and return its stdout; raise :class:`RealVirtError` on failure."""
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RealVirtError(f"{' '.join(args)} timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise RealVirtError(
            f"{' '.join(args)} failed with exit status {proc.returncode}:\n"
            f"{proc.stderr.strip()}\n{proc.stdout.strip()}".rstrip()
        )
    return proc.stdout


def unavailable_reason() -> str | None:
    """Why the real-VM tier cannot run here, or None when it can.

    The only blocker is not being root: the sandboxed libvirtd needs a private mount
    namespace and the apt packages (which the scripts install when run as root).
    """
    if os.geteuid() != 0:
        return (
            "real-libvirt e2e tests need root (a private mount namespace for libvirtd, "
            "apt-get for libvirt-daemon/qemu-system-x86/busybox-static); CI runs them as root"
        )
    return None


def ensure_tiny_guest(directory: StrPath = ARTIFACTS_DIR) -> tuple[Path, Path]:
    """Build (or reuse) the tiny guest in ``directory``; return ``(kernel, initrd)``.

    The first build downloads the Debian kernel package (~70 MB, a few seconds); later calls
    return the cached files at once.
    """
    out = _run(["bash", str(BUILD_SCRIPT), os.fspath(directory)], timeout=900)
    lines = [line for line in out.splitlines() if line.strip()]
    if len(lines) < 2:
        raise RealVirtError(f"{BUILD_SCRIPT.name} printed no paths: {out!r}")
    kernel, initrd = Path(lines[-2]), Path(lines[-1])
    for path in (kernel, initrd):
        if not path.is_file():
            raise RealVirtError(f"{BUILD_SCRIPT.name} did not produce {path}")
    return kernel, initrd


def start_libvirtd(statedir: StrPath, timeout: float = 300) -> str:
    """Start (or reuse) the sandboxed libvirtd of ``statedir`` and return its URI.

    The URI has the form ``qemu+unix:///system?socket=STATEDIR/run/libvirt-sock``. The call
    returns once the QEMU driver answers. Always pair it with :func:`stop_libvirtd`.
    """
    out = _run(["bash", str(SANDBOX_SCRIPT), "start", os.fspath(statedir)], timeout=timeout)
    uri = out.strip().splitlines()[-1] if out.strip() else ""
    if not uri.startswith("qemu"):
        raise RealVirtError(f"{SANDBOX_SCRIPT.name} start printed no URI: {out!r}")
    return uri


def stop_libvirtd(statedir: StrPath, timeout: float = 120) -> None:
    """Kill the sandbox's guests and its libvirtd. Safe to call when nothing runs."""
    _run(["bash", str(SANDBOX_SCRIPT), "stop", os.fspath(statedir)], timeout=timeout)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    """Append a child element with optional text and attributes."""
    child = ET.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = text
    return child


def _absolute(path: StrPath) -> str:
    """libvirt resolves paths in the daemon, so hand it absolute ones."""
    return os.fspath(Path(path).absolute())


def tiny_guest_domain_xml(
    name: str,
    uuid: str | uuidlib.UUID,
    kernel: StrPath,
    initrd: StrPath,
    serial_log_path: StrPath,
    memory_mib: int = 128,
) -> str:
    """Domain XML that boots the tiny guest by direct kernel boot under TCG.

    One vCPU, ``memory_mib`` of RAM (at least :data:`MIN_MEMORY_MIB`), kernel command line
    ``console=ttyS0 panic=-1``, the first serial port (also the console) written to
    ``serial_log_path`` (truncated at each start), no disks, NICs, graphics or balloon, and
    a 16 MiB TCG translation-block cache (QEMU's default is far larger; this keeps the host
    RSS of a guest around 160 MB).
    """
    if memory_mib < MIN_MEMORY_MIB:
        raise ValueError(f"memory_mib must be >= {MIN_MEMORY_MIB}, got {memory_mib}")
    domain = ET.Element("domain", {"type": "qemu"})
    _sub(domain, "name", name)
    _sub(domain, "uuid", str(uuidlib.UUID(str(uuid))))
    _sub(domain, "memory", str(memory_mib), unit="MiB")
    _sub(domain, "currentMemory", str(memory_mib), unit="MiB")
    _sub(domain, "vcpu", "1")

    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "kernel", _absolute(kernel))
    _sub(os_el, "initrd", _absolute(initrd))
    _sub(os_el, "cmdline", "console=ttyS0 panic=-1")

    features = _sub(domain, "features")
    _sub(features, "acpi")
    tcg = _sub(features, "tcg")  # <tcg><tb-cache> exists since libvirt 8.0
    _sub(tcg, "tb-cache", "16", unit="MiB")

    _sub(domain, "clock", offset="utc")

    devices = _sub(domain, "devices")
    log = _absolute(serial_log_path)
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=log)
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=log)
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def wait_for_marker(
    serial_log_path: StrPath,
    timeout: float = 120.0,
    marker: str = MARKER,
    poll_interval: float = 0.2,
) -> float:
    """Poll the serial log until ``marker`` appears; return the seconds waited.

    Raises :class:`TimeoutError` (with the end of the log) when it does not appear in time.
    """
    path = Path(serial_log_path)
    needle = marker.encode()
    start = time.monotonic()
    while True:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if needle in data:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            tail = data[-2000:].decode(errors="replace")
            raise TimeoutError(
                f"{marker!r} not in {path} after {timeout:.0f}s; log ends with:\n{tail}"
            )
        time.sleep(poll_interval)
