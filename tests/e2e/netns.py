"""A test host with its own address: a network namespace, a veth pair and an sshd inside.

:func:`ssh_host` creates namespace ``gc-<random>`` with a veth pair (``10.X.Y.1`` on this
side, ``10.X.Y.2`` inside), generates an ed25519 host key and a client key, and starts
``sshd`` inside the namespace listening on ``10.X.Y.2:22``, accepting only that client key
for root (its ``AuthorizedKeysFile`` is in the test's directory, so nothing in ``/root``
is touched). It yields an :class:`SshHost` and, on exit, kills every process left in the
namespace (sshd, and agents started through it), then deletes the namespace (which
removes the veth pair).

The namespace shares this machine's filesystem: what Ansible installs "on the host" is
installed here. Tests therefore use simulated mode (no packages) and paths in a temp dir.
Needs root, ``ip`` (iproute2) and ``sshd`` (openssh-server; ``scripts/bootstrap.sh --e2e``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


def unavailable_reason() -> str | None:
    """Why a namespaced sshd cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces and sshd need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed (scripts/bootstrap.sh --e2e)"
    if not SSHD.exists():
        return "openssh-server is not installed (scripts/bootstrap.sh --e2e)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the ssh client is not installed"
    return None


@dataclass(frozen=True)
class SshHost:
    """The namespaced host: where to reach it and how to log in."""

    namespace: str
    address: str  # inside the namespace (sshd)
    gateway: str  # this side of the veth (reachable from inside)
    user: str
    key: Path

    def inventory_vars(self) -> str:
        """INI host variables to reach it over ssh with Ansible."""
        return (
            f"ansible_host={self.address} ansible_user={self.user} "
            f"ansible_ssh_private_key_file={self.key} ansible_python_interpreter=/usr/bin/python3 "
            "ansible_ssh_args='-o ControlMaster=no -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'"
        )


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _namespace_pids(namespace: str) -> list[int]:
    done = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    return [int(p) for p in done.stdout.split()]


def _wait_port(address: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with status {proc.returncode}")
        with socket.socket() as sock, suppress(OSError):
            sock.settimeout(0.5)
            sock.connect((address, port))
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd did not listen on {address}:{port}")
        time.sleep(0.05)


@contextmanager
def ssh_host(workdir: Path) -> Iterator[SshHost]:
    """A namespaced sshd for the duration of the block (see the module docstring)."""
    tag = secrets.token_hex(3)
    namespace, outside, inside = f"gc-{tag}", f"gcv{tag}a", f"gcv{tag}b"
    octets = secrets.randbelow(250) + 1, secrets.randbelow(250) + 1
    net = f"10.{200 + octets[0] % 50}.{octets[1]}"
    gateway, address = f"{net}.1", f"{net}.2"
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "ssh_host_ed25519_key", workdir / "client_key"
    proc: subprocess.Popen[bytes] | None = None
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", namespace)
        _run("ip", "addr", "add", f"{gateway}/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", inside)
        _run("ip", "-n", namespace, "link", "set", inside, "up")
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        for key in (host_key, client_key):
            _run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "govcloud-test", "-f", str(key)
            )
        authorized = workdir / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:22",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir
        with (workdir / "sshd.log").open("wb") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", namespace, str(SSHD), "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_port(address, 22, 15.0, proc)
        yield SshHost(namespace, address, gateway, "root", client_key)
    finally:
        for pid in _namespace_pids(namespace):  # agents started over ssh, sshd, sessions
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None:
            with suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, check=False)
