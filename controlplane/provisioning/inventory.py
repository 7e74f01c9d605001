"""Reading an Ansible inventory: its hosts and their variables.

Owns :func:`inventory_hosts`, which asks ``ansible-inventory --list`` (the one next to the
running Python) so every inventory format and plugin ansible knows is supported, and
returns the hosts sorted by name with their merged variables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from controlplane.provisioning.runner import ProvisioningError


class InventoryHost(BaseModel):
    """One host of an inventory."""

    name: str
    vars: dict[str, Any] = {}


def inventory_hosts(inventory: Path, *, timeout_s: float = 60.0) -> list[InventoryHost]:
    """The hosts of ``inventory`` (raises :class:`ProvisioningError` when it is unreadable)."""
    path = inventory.expanduser().absolute()
    if not path.exists():
        raise ProvisioningError(f"inventory {path} does not exist")
    binary = Path(sys.executable).with_name("ansible-inventory")
    argv = [str(binary) if binary.exists() else "ansible-inventory", "-i", str(path), "--list"]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProvisioningError(f"cannot run ansible-inventory: {err}") from err
    if done.returncode != 0:
        raise ProvisioningError(
            f"cannot read inventory {path}: {done.stderr.strip() or done.stdout.strip()}"
        )
    try:
        data = json.loads(done.stdout)
    except ValueError as err:
        raise ProvisioningError(f"ansible-inventory gave unreadable output: {err}") from err
    hostvars: dict[str, Any] = (data.get("_meta") or {}).get("hostvars") or {}
    names: set[str] = set(hostvars)
    for group in data.values():
        if isinstance(group, dict):
            names.update(group.get("hosts") or [])
    return [InventoryHost(name=n, vars=dict(hostvars.get(n) or {})) for n in sorted(names)]
