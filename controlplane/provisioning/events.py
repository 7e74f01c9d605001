"""What happened in a playbook run, parsed from ansible-runner's events (pure, no I/O).

Owns :class:`TaskEvent` (one host finished one task: ok, changed, skipped, failed or
unreachable, with the error text when it failed), :func:`parse_event`, and
:class:`PlaybookResult` / :class:`HostOutcome`: per-host counts and the failure that
ended a host's run (the last non-ignored failed task), which is how a failure "names the
host, the task and the error output".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Longest error text kept per failure (module output can be huge).
MAX_ERROR_CHARS = 2000


class TaskStatus(StrEnum):
    """How a task ended on one host."""

    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


class TaskEvent(BaseModel):
    """One host finished one task (or a play/task started, with ``host`` empty)."""

    model_config = ConfigDict(frozen=True)

    host: str
    task: str
    status: TaskStatus
    #: The module's ``msg``, then its stderr (and stdout when there is nothing else).
    error: str = ""
    #: A failure that the playbook ignores or rescues does not end the host's run.
    ignored: bool = False


class TaskStart(BaseModel):
    """A task is starting (on all hosts of the play)."""

    model_config = ConfigDict(frozen=True)

    task: str


_STATUS_OF_EVENT = {
    "runner_on_ok": TaskStatus.OK,
    "runner_on_skipped": TaskStatus.SKIPPED,
    "runner_on_failed": TaskStatus.FAILED,
    "runner_on_unreachable": TaskStatus.UNREACHABLE,
    "runner_item_on_failed": None,  # the loop's overall result follows as runner_on_failed
}


def error_text(res: Mapping[str, Any]) -> str:
    """The human-readable error in a module result: ``msg``, then ``stderr``; ``stdout``
    only when both are empty. Per-item failures of a loop are included."""
    parts: list[str] = []
    msg = res.get("msg")
    if isinstance(msg, str) and msg.strip():
        parts.append(msg.strip())
    stderr = res.get("stderr")
    if isinstance(stderr, str) and stderr.strip():
        parts.append(f"stderr: {stderr.strip()}")
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("failed"):
            inner = error_text(item)
            if inner:
                parts.append(f"item {item.get('item')!r}: {inner}")
    if not parts:
        stdout = res.get("stdout")
        if isinstance(stdout, str) and stdout.strip():
            parts.append(f"stdout: {stdout.strip()}")
    text = "\n".join(parts)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return text


def parse_event(event: Mapping[str, Any]) -> TaskEvent | TaskStart | None:
    """A runner event as a :class:`TaskEvent` / :class:`TaskStart`; None for the rest."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    if kind == "playbook_on_task_start":
        return TaskStart(task=str(data.get("task") or data.get("name") or "?"))
    if kind not in _STATUS_OF_EVENT or _STATUS_OF_EVENT[kind] is None:
        return None
    status = _STATUS_OF_EVENT[kind]
    assert status is not None
    res = data.get("res") or {}
    if not isinstance(res, Mapping):
        res = {}
    if status is TaskStatus.OK and res.get("changed"):
        status = TaskStatus.CHANGED
    failed = status in (TaskStatus.FAILED, TaskStatus.UNREACHABLE)
    return TaskEvent(
        host=str(data.get("host") or data.get("remote_addr") or "?"),
        task=str(data.get("task") or "?"),
        status=status,
        error=error_text(res) if failed else "",
        ignored=bool(data.get("ignore_errors")) if failed else False,
    )


class HostOutcome(BaseModel):
    """How one host's run ended."""

    host: str
    ok: int = 0
    changed: int = 0
    skipped: int = 0
    failed: bool = False
    unreachable: bool = False
    #: The task and error text that ended the host's run (empty when it succeeded).
    failed_task: str = ""
    error: str = ""

    @property
    def succeeded(self) -> bool:
        """Neither failed nor unreachable."""
        return not (self.failed or self.unreachable)


class PlaybookResult(BaseModel):
    """One run of one playbook."""

    playbook: str
    #: ansible-runner's final status (``successful``, ``failed``, ``timeout``, ``canceled``).
    status: str
    rc: int
    hosts: dict[str, HostOutcome]
    #: The end of ansible's own output when the run failed without a task failure (e.g. a
    #: syntax error or an unreadable inventory).
    output_tail: str = ""

    @property
    def succeeded(self) -> bool:
        """The run completed and no host failed."""
        return self.rc == 0 and all(h.succeeded for h in self.hosts.values())


def outcomes(
    events: Iterable[TaskEvent], stats: Mapping[str, Mapping[str, int]] | None
) -> dict[str, HostOutcome]:
    """Per-host outcomes from the task events (counts, last blocking failure) and
    ansible's final ``stats`` (which know about rescued failures)."""
    hosts: dict[str, HostOutcome] = {}
    for ev in events:
        out = hosts.setdefault(ev.host, HostOutcome(host=ev.host))
        if ev.status is TaskStatus.OK:
            out.ok += 1
        elif ev.status is TaskStatus.CHANGED:
            out.ok += 1
            out.changed += 1
        elif ev.status is TaskStatus.SKIPPED:
            out.skipped += 1
        elif not ev.ignored:
            out.failed_task, out.error = ev.task, ev.error
            if ev.status is TaskStatus.UNREACHABLE:
                out.unreachable = True
            else:
                out.failed = True
    if stats:
        failures = stats.get("failures") or {}
        dark = stats.get("dark") or {}
        for host in set(failures) | set(dark) | set(stats.get("processed") or {}):
            out = hosts.setdefault(host, HostOutcome(host=host))
            out.failed = bool(failures.get(host))
            out.unreachable = bool(dark.get(host))
            if out.succeeded:
                out.failed_task, out.error = "", ""  # every failure was rescued
    return hosts
