"""controlplane.provisioning: parsing ansible-runner events into per-host outcomes (pure),
the inventory reader, and the playbooks' syntax (``ansible-playbook --syntax-check``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.provisioning.events import (
    MAX_ERROR_CHARS,
    TaskEvent,
    TaskStart,
    TaskStatus,
    error_text,
    outcomes,
    parse_event,
)
from controlplane.provisioning.inventory import inventory_hosts
from controlplane.provisioning.runner import (
    PLAYBOOKS,
    ProvisioningError,
    playbook_dir,
    run_playbook,
)


def event(kind: str, host: str = "h1", task: str = "t", **res: Any) -> dict[str, Any]:
    """An ansible-runner event as its event_handler receives it."""
    return {"event": kind, "event_data": {"host": host, "task": task, "res": res}}


def test_task_results_are_parsed_with_their_status() -> None:
    assert parse_event(event("runner_on_ok", changed=False)) == TaskEvent(
        host="h1", task="t", status=TaskStatus.OK
    )
    changed = parse_event(event("runner_on_ok", changed=True))
    assert isinstance(changed, TaskEvent)
    assert changed.status is TaskStatus.CHANGED
    skipped = parse_event(event("runner_on_skipped"))
    assert isinstance(skipped, TaskEvent)
    assert skipped.status is TaskStatus.SKIPPED
    start = {"event": "playbook_on_task_start", "event_data": {"task": "Install"}}
    assert parse_event(start) == TaskStart(task="Install")
    assert parse_event({"event": "playbook_on_stats", "event_data": {}}) is None
    assert parse_event({"event": "verbose", "stdout": "x"}) is None


def test_a_failure_carries_msg_and_stderr_and_ignored_failures_say_so() -> None:
    failed = parse_event(
        event("runner_on_failed", host="h2", task="Run", msg="non-zero return code", stderr="boom")
    )
    assert failed == TaskEvent(
        host="h2", task="Run", status=TaskStatus.FAILED, error="non-zero return code\nstderr: boom"
    )
    raw = event("runner_on_failed", msg="meh")
    raw["event_data"]["ignore_errors"] = True
    ignored = parse_event(raw)
    assert isinstance(ignored, TaskEvent)
    assert ignored.ignored
    unreachable = parse_event(event("runner_on_unreachable", msg="ssh: connection refused"))
    assert isinstance(unreachable, TaskEvent)
    assert unreachable.status is TaskStatus.UNREACHABLE
    assert unreachable.error == "ssh: connection refused"


def test_error_text_falls_back_to_stdout_includes_failed_items_and_is_bounded() -> None:
    assert error_text({"stdout": "only this"}) == "stdout: only this"
    looped = error_text(
        {"msg": "one item failed", "results": [{"failed": True, "item": "a", "msg": "no"}]}
    )
    assert looped == "one item failed\nitem 'a': no"
    assert len(error_text({"msg": "x" * 10_000})) == MAX_ERROR_CHARS


def test_outcomes_keep_the_last_blocking_failure_and_trust_the_final_stats() -> None:
    events = [
        TaskEvent(host="a", task="one", status=TaskStatus.CHANGED),
        TaskEvent(host="a", task="probe", status=TaskStatus.FAILED, error="x", ignored=True),
        TaskEvent(host="a", task="wait", status=TaskStatus.FAILED, error="timeout"),
        TaskEvent(host="a", task="report", status=TaskStatus.FAILED, error="did not register"),
        TaskEvent(host="b", task="one", status=TaskStatus.OK),
        TaskEvent(host="b", task="flaky", status=TaskStatus.FAILED, error="rescued"),
        TaskEvent(host="c", task="connect", status=TaskStatus.UNREACHABLE, error="no route"),
    ]
    stats = {"failures": {"a": 1}, "dark": {"c": 1}, "processed": {"a": 1, "b": 1, "c": 1}}
    hosts = outcomes(events, stats)
    assert (hosts["a"].failed, hosts["a"].failed_task, hosts["a"].error) == (
        True,
        "report",
        "did not register",
    )
    assert hosts["a"].changed == 1
    assert hosts["b"].succeeded  # its failure was rescued: stats say so
    assert hosts["b"].failed_task == ""
    assert hosts["c"].unreachable
    assert not hosts["c"].succeeded


def test_inventory_hosts_with_their_variables(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[tpe]\ntpe-h01 govcloud_datacentre=tpe\ntpe-h02\n[tpe:vars]\nansible_connection=local\n"
    )
    hosts = inventory_hosts(inventory)
    assert [h.name for h in hosts] == ["tpe-h01", "tpe-h02"]
    assert hosts[0].vars["govcloud_datacentre"] == "tpe"
    assert hosts[1].vars["ansible_connection"] == "local"
    with pytest.raises(ProvisioningError, match="does not exist"):
        inventory_hosts(tmp_path / "missing.ini")


def test_unknown_playbooks_are_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "i.ini"
    inventory.write_text("h\n")
    with pytest.raises(ProvisioningError, match="unknown playbook"):
        run_playbook("../../etc/evil", inventory)


def test_every_playbook_passes_ansible_syntax_check(tmp_path: Path) -> None:
    playbooks = [str(playbook_dir() / f"{name}.yml") for name in PLAYBOOKS]
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "--syntax-check",
            "-i",
            "localhost,",
            *playbooks,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "ANSIBLE_ROLES_PATH": str(playbook_dir() / "roles"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path),
            "HOME": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
