"""Runs one of govcloud's playbooks with ansible-runner.

Owns :func:`run_playbook` and where the playbooks are (:func:`playbook_dir`). Each run gets
a FRESH private data directory (mode 0700, removed afterwards): ansible-runner persists
extravars and envvars there (``env/extravars``), so reusing one would leak a previous
run's bootstrap tokens into the next. ansible's own output is not printed; every task
result is parsed into a :class:`~.events.TaskEvent` and passed to ``on_event`` as it
happens, so the caller can stream per-host, per-task progress.

``ansible-playbook`` is the one installed next to the running Python (the venv's), so the
CLI works without the venv on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ansible_runner

from controlplane.provisioning.events import (
    PlaybookResult,
    TaskEvent,
    TaskStart,
    outcomes,
    parse_event,
)

#: Playbooks that may be run (file names under :func:`playbook_dir`).
PLAYBOOKS = ("enrol", "decommission", "upgrade-agent", "maintenance", "drain")
#: Lines of ansible's output kept for a failure that no task event explains.
OUTPUT_TAIL_LINES = 25

EventCallback = Callable[[TaskEvent | TaskStart], None]


class ProvisioningError(Exception):
    """A playbook could not be run at all (missing playbook, inventory, ansible)."""


def playbook_dir() -> Path:
    """``playbooks/`` of this checkout (``GOVCLOUD_PLAYBOOK_DIR`` overrides it)."""
    configured = os.environ.get("GOVCLOUD_PLAYBOOK_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    return Path(__file__).resolve().parents[2] / "playbooks"


def _bin_dir() -> str:
    return str(Path(sys.executable).parent)


def run_playbook(
    name: str,
    inventory: Path,
    *,
    extravars: Mapping[str, Any] | None = None,
    envvars: Mapping[str, str] | None = None,
    on_event: EventCallback | None = None,
    limit: str | None = None,
    forks: int = 10,
    timeout_s: int | None = None,
) -> PlaybookResult:
    """Run ``playbooks/<name>.yml`` against ``inventory``; never raises for task failures
    (they are in the result), only :class:`ProvisioningError` when it cannot start."""
    if name not in PLAYBOOKS:
        raise ProvisioningError(f"unknown playbook {name!r}; known: {', '.join(PLAYBOOKS)}")
    playbook = playbook_dir() / f"{name}.yml"
    if not playbook.is_file():
        raise ProvisioningError(f"playbook {playbook} not found (set GOVCLOUD_PLAYBOOK_DIR)")
    inventory = inventory.expanduser().absolute()
    if not inventory.exists():
        raise ProvisioningError(f"inventory {inventory} does not exist")
    task_events: list[TaskEvent] = []

    def _handle(event: dict[str, Any]) -> bool:
        parsed = parse_event(event)
        if isinstance(parsed, TaskEvent):
            task_events.append(parsed)
        if parsed is not None and on_event is not None:
            on_event(parsed)
        return True  # keep the event's artifact file (ansible-runner's default)

    env = {
        "PATH": f"{_bin_dir()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_ROLES_PATH": str(playbook.parent / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",  # one connection per task, no temp module files
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        **(envvars or {}),
    }
    private = Path(tempfile.mkdtemp(prefix="govcloud-ansible-"))
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(playbook),
            inventory=str(inventory),
            extravars=dict(extravars or {}),
            envvars=env,
            limit=limit,
            forks=forks,
            quiet=True,
            event_handler=_handle,
            timeout=timeout_s,
        )
        tail = ""
        hosts = outcomes(task_events, runner.stats)
        if runner.rc != 0 and all(h.succeeded for h in hosts.values()):
            output = runner.stdout.read() if runner.stdout is not None else ""
            tail = "\n".join(output.strip().splitlines()[-OUTPUT_TAIL_LINES:])
        return PlaybookResult(
            playbook=name,
            status=str(runner.status),
            rc=int(runner.rc if runner.rc is not None else -1),
            hosts=hosts,
            output_tail=tail,
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
