"""The host agent: registration, heartbeats and level-based reconciliation of libvirt.

Owns the :class:`Agent` and its loops, the pure per-instance decision
(:func:`plan_instance`), the credential file (:class:`CredentialStore`) and the
:class:`Clock` the loops wait on. Everything is injected -- settings, the
:class:`~agents.drivers.base.HostDriver`, the :class:`~agents.client.ControlPlane`, the
clock -- so tests run agents in-process against the libvirt test driver.

Reconciliation is level-based and idempotent. Each pass takes the full assignment list and
what libvirt shows, then:

* removes every ``gc-*`` domain that is not assigned (fencing: the instance was deleted or
  now lives on another host);
* per assignment: ``deleted`` -> destroy + undefine; absent and ``create`` -> define (and
  start if desired running); absent and not ``create`` -> report ``absent`` (never
  recreate a VM that vanished); present -> first, if the domain is shut off and its
  vCPU/memory sizes differ from the assignment's, redefine it with the new sizes (a
  resize; its metadata is kept, and a running domain is never redefined); then converge
  power state, and reboot when the assignment's ``reboot_seq`` is newer than the one
  stored in the domain's metadata;
* migrations (``assignment.migration``): the source live-migrates to the target's URI
  when the driver can, else pauses (live) or powers off (cold) its copy and reports
  ``ready``; the target never creates the domain before the handoff (``create``) and
  never fences one arriving; the source's copy is fenced once the move is done;
* reports the observed state of every assignment. A failure of one instance is reported as
  ``error`` with the hypervisor's message and does not stop the others.

Domains that are not named ``gc-*`` are never looked at. After a restart the agent adopts
what it finds: it never defines a second copy and never restarts a running domain.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Protocol

from agents.client import (
    AuthenticationFailed,
    ControlPlane,
    ControlPlaneError,
    HostCredential,
)
from agents.config import AgentSettings
from agents.drivers.base import (
    DomainInfo,
    DomainNotFound,
    DriverError,
    HostDriver,
    InstanceMetadata,
    PowerState,
)
from agents.lease import write_lease
from agents.metrics import AgentMetrics
from agents.protocol.v1 import (
    ActualState,
    Assignment,
    AssignmentList,
    DesiredState,
    Heartbeat,
    HeartbeatAck,
    InstanceStatus,
    MigrationOrder,
    MigrationProgress,
    MigrationRole,
    RegisterRequest,
    StatusReport,
)

log = logging.getLogger(__name__)

#: Generation sent before the agent has seen any list: never equal to a real one, so the
#: control plane answers at once.
UNKNOWN_GENERATION = -1
#: Passes one sync() may chain on the assignments a status report was answered with.
FOLLOW_UP_PASSES = 2
_MESSAGE_MAX = 200
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")


@functools.cache
def agent_version() -> str:
    """The installed govcloud version (reported at registration and in heartbeats)."""
    try:
        return importlib_metadata.version("govcloud")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


# -- clock ------------------------------------------------------------------------------


class Clock(Protocol):
    """Time as the agent's loops see it (inject a fake one to run hours in milliseconds)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set or ``timeout`` seconds pass; True if it is set."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait(timeout)``."""
        return event.wait(max(0.0, timeout))


# -- credential file --------------------------------------------------------------------


class AgentConfigError(Exception):
    """The agent cannot proceed until an operator changes its configuration or state."""


class CredentialStore:
    """The host credential in ``<state_dir>/credential.json`` (mode 0600, written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> HostCredential | None:
        """The stored credential, None if there is none; AgentConfigError if unreadable."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            return HostCredential(
                host_id=str(data["host_id"]),
                credential=str(data["credential"]),
                datacentre=str(data.get("datacentre", "")),
                heartbeat_interval_s=float(data.get("heartbeat_interval_s", 0.0)),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise AgentConfigError(
                f"credential file {self.path} is unreadable ({err}); remove it and enrol the "
                "host again with a new bootstrap token"
            ) from err

    def save(self, credential: HostCredential, **extra: str) -> None:
        """Write ``credential`` so only the agent's user can read it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = {
            "host_id": credential.host_id,
            "credential": credential.credential,
            "datacentre": credential.datacentre,
            "heartbeat_interval_s": credential.heartbeat_interval_s,
            **extra,
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        os.replace(tmp, self.path)


# -- decisions --------------------------------------------------------------------------


class Action(StrEnum):
    """One thing the agent does to a domain."""

    DEFINE = "define"
    DEFINE_START = "define+start"
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    RECORD_REBOOT_SEQ = "record-reboot-seq"
    RESIZE = "resize"
    DELETE = "delete"


@dataclass(frozen=True)
class Step:
    """An action and why it is needed (logged with the instance id)."""

    action: Action
    reason: str


_ACTIVE = frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTTING_DOWN})


def plan_instance(assignment: Assignment, domain: DomainInfo | None) -> list[Step]:
    """What to do so that ``domain`` matches ``assignment`` (pure; empty when converged)."""
    desired = assignment.desired
    if desired is DesiredState.DELETED:
        return [Step(Action.DELETE, "desired deleted")] if domain is not None else []
    if domain is None:
        if not assignment.create:
            return []  # vanished: report absent, never recreate
        if desired is DesiredState.RUNNING:
            return [Step(Action.DEFINE_START, "no domain yet; desired running")]
        return [Step(Action.DEFINE, "no domain yet; desired stopped")]

    steps: list[Step] = []
    resize = resize_step(assignment, domain)
    if resize is not None:
        steps.append(resize)
    newer_reboot = assignment.reboot_seq > domain.reboot_seq
    if desired is DesiredState.RUNNING:
        if domain.state is not PowerState.RUNNING:
            steps.append(Step(Action.START, f"domain is {domain.state.value}; desired running"))
            if newer_reboot:
                steps.append(
                    Step(
                        Action.RECORD_REBOOT_SEQ,
                        f"reboot {assignment.reboot_seq} satisfied by the start",
                    )
                )
        elif newer_reboot:
            steps.append(
                Step(
                    Action.REBOOT,
                    f"reboot_seq {assignment.reboot_seq} > applied {domain.reboot_seq}",
                )
            )
            steps.append(Step(Action.RECORD_REBOOT_SEQ, "reboot done"))
    else:  # STOPPED
        if domain.state in _ACTIVE:
            steps.append(Step(Action.STOP, f"domain is {domain.state.value}; desired stopped"))
        if newer_reboot:
            steps.append(
                Step(
                    Action.RECORD_REBOOT_SEQ,
                    f"reboot {assignment.reboot_seq} moot: desired stopped",
                )
            )
    return steps


def resize_step(assignment: Assignment, domain: DomainInfo) -> Step | None:
    """A redefine if ``domain`` is shut off and its sizes differ from the assignment's.

    Only a STOPPED domain is redefined (crashed, paused or running ones may still be
    active, and changing a live domain's sizes is not a cold resize); sizes the driver
    could not read never trigger one.
    """
    if domain.state is not PowerState.STOPPED or domain.vcpus is None or domain.ram_mib is None:
        return None
    if (domain.vcpus, domain.ram_mib) == (assignment.vcpus, assignment.ram_mib):
        return None
    target = f"flavor {assignment.flavor}" if assignment.flavor else "the assignment"
    return Step(
        Action.RESIZE,
        f"domain has {domain.vcpus} vCPU, {domain.ram_mib} MiB; {target} has "
        f"{assignment.vcpus} vCPU, {assignment.ram_mib} MiB",
    )


def observed_status(
    instance_id: str, domain: DomainInfo | None, *, message: str = ""
) -> InstanceStatus:
    """The status to report for what libvirt shows (``absent`` when there is no domain)."""
    if domain is None:
        return InstanceStatus(
            instance_id=instance_id, state=ActualState.ABSENT, message=clean_message(message)
        )
    state = domain.state
    if state is PowerState.RUNNING:
        actual = ActualState.RUNNING
    elif state in (PowerState.PAUSED, PowerState.SHUTTING_DOWN):
        actual = ActualState.RUNNING
        message = message or f"domain is {state.value}"
    elif state is PowerState.STOPPED:
        actual = ActualState.STOPPED
    elif state is PowerState.CRASHED:
        actual = ActualState.STOPPED
        message = message or "domain crashed"
    else:
        actual = ActualState.ERROR
        message = message or "libvirt reports no state for the domain"
    return InstanceStatus(
        instance_id=instance_id,
        state=actual,
        reboot_seq=domain.reboot_seq,
        vcpus=domain.vcpus,
        ram_mib=domain.ram_mib,
        message=clean_message(message),
    )


def incoming_status(instance_id: str, domain: DomainInfo | None) -> InstanceStatus:
    """What the target of a migration reports before the handoff: it never creates or
    touches the domain; one arriving by live migration is paused until it completes."""
    if domain is None:
        return InstanceStatus(
            instance_id=instance_id,
            state=ActualState.ABSENT,
            message="waiting for an incoming migration",
        )
    if domain.state is PowerState.PAUSED:
        return InstanceStatus(
            instance_id=instance_id,
            state=ActualState.BUILDING,
            message="incoming migration in progress",
        )
    return observed_status(instance_id, domain)


def clean_message(message: str) -> str:
    """A message that fits the protocol's Text type (no control characters, <= 200 chars)."""
    flat = _CONTROL_CHARS.sub(" ", message).strip()
    return flat if len(flat) <= _MESSAGE_MAX else flat[: _MESSAGE_MAX - 3] + "..."


# -- the agent --------------------------------------------------------------------------


class Agent:
    """One host agent. Call :meth:`start`/:meth:`stop`, or drive it step by step."""

    def __init__(
        self,
        settings: AgentSettings,
        driver: HostDriver,
        control_plane: ControlPlane,
        *,
        clock: Clock | None = None,
        credential_store: CredentialStore | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else AgentMetrics()
        self.driver = driver
        self.control_plane = control_plane
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.credentials = (
            credential_store
            if credential_store is not None
            else CredentialStore(settings.credential_path)
        )
        self._credential: HostCredential | None = None
        self._register_lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._stopping = threading.Event()
        self._registered = threading.Event()
        self._threads: list[threading.Thread] = []
        self._generation = UNKNOWN_GENERATION
        self._next_pass_at = float("-inf")
        self._heartbeat_interval_s = settings.heartbeat_interval_s
        self._fence_after_s = 0.0
        self._last_contact: float | None = None
        self._isolated = False
        #: Last status reported (and acknowledged) per instance, the listing of the last
        #: pass, and whether the control plane asked for a full report (see sync()).
        self._posted: dict[str, InstanceStatus] = {}
        self._last_listing: AssignmentList | None = None
        self._report_all = False
        #: From the last heartbeat ack: whether a Lab load runs on this host (None: the
        #: control plane does not say). The usage reporter polls for loads only when not False.
        self.lab_loads: bool | None = None
        self.last_report: StatusReport | None = None
        self.reports_sent = 0
        self.passes = 0

    # -- state for callers and tests --------------------------------------------------

    @property
    def credential(self) -> HostCredential | None:
        """The host identity, once registered (or loaded)."""
        return self._credential

    @property
    def generation(self) -> int:
        """Generation of the last assignment list that was reconciled and reported."""
        return self._generation

    @property
    def heartbeat_interval_s(self) -> float:
        """Current heartbeat period (the control plane's value once it sent one)."""
        return self._heartbeat_interval_s

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    # -- registration and heartbeat ---------------------------------------------------

    def ensure_registered(self) -> HostCredential:
        """Reuse the stored credential, or register with the bootstrap token and store one."""
        with self._register_lock:
            if self._credential is not None:
                return self._credential
            stored = self.credentials.load()
            if stored is not None:
                log.info(
                    "host=%s reusing stored credential from %s",
                    stored.host_id,
                    self.credentials.path,
                )
                self._adopt_credential(stored)
                return stored
            token = self.settings.bootstrap_token
            if token is None:
                raise AgentConfigError(
                    f"no credential at {self.credentials.path} and no bootstrap_token set; "
                    "enrol the host and pass its token as GOVCLOUD_AGENT_BOOTSTRAP_TOKEN"
                )
            response = self.control_plane.register(
                RegisterRequest(
                    bootstrap_token=token.get_secret_value(),
                    name=self.settings.name,
                    capacity=self.settings.capacity.resources(),
                    traits=list(self.settings.traits),
                    libvirt_uri=self.driver.uri,
                    agent_version=agent_version(),
                )
            )
            credential = HostCredential(
                host_id=response.host_id,
                credential=response.credential,
                datacentre=response.datacentre,
                heartbeat_interval_s=response.heartbeat_interval_s,
            )
            self.credentials.save(
                credential,
                name=self.settings.name,
                control_plane_url=self.settings.control_plane_url,
            )
            log.info(
                "host=%s registered as %r in datacentre %s; credential stored in %s",
                credential.host_id,
                self.settings.name,
                credential.datacentre,
                self.credentials.path,
            )
            self._adopt_credential(credential)
            return credential

    def _adopt_credential(self, credential: HostCredential) -> None:
        self._credential = credential
        if credential.heartbeat_interval_s > 0:
            self._heartbeat_interval_s = credential.heartbeat_interval_s
        self._registered.set()

    def heartbeat(self) -> HeartbeatAck:
        """Send one heartbeat with the configured capacity and the number of gc domains."""
        credential = self.ensure_registered()
        try:
            domains = len(self.driver.list_domains())
        except DriverError as err:
            log.warning(
                "host=%s cannot list domains for the heartbeat: %s", credential.host_id, err
            )
            domains = 0
        try:
            ack = self.control_plane.heartbeat(
                credential,
                Heartbeat(
                    capacity=self.settings.capacity.resources(),
                    domains=domains,
                    agent_version=agent_version(),
                ),
            )
        except Exception:
            self.metrics.heartbeat_failures.inc()
            raise
        self.metrics.heartbeats.inc()
        if ack.heartbeat_interval_s > 0:
            self._heartbeat_interval_s = ack.heartbeat_interval_s
        self._fence_after_s = ack.fence_after_s
        self._last_contact = self.clock.monotonic()
        # The host-side fence watchdog (agents/watchdog.py) acts if this stops.
        write_lease(self.settings.fence_lease_path, self.settings.name, ack.fence_after_s)
        if self._isolated:
            log.warning("host=%s contact restored; reconciling", credential.host_id)
            self._isolated = False
            self._next_pass_at = float("-inf")
        self.lab_loads = ack.lab_loads
        if ack.report_all:  # the control plane may have marked our instances UNKNOWN
            self._report_all = True
            self._next_pass_at = float("-inf")
        log.debug("host=%s heartbeat ok; host state %s", credential.host_id, ack.host_state)
        return ack

    # -- reconciliation ---------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        """True while this host has fenced itself (see :meth:`check_isolation`)."""
        return self._isolated

    def check_isolation(self) -> bool:
        """Fence this host if the control plane has been unreachable past the lease.

        The control plane restarts a DOWN host's instances elsewhere only after
        ``fence_after_s`` plus a margin (see ``domain/evacuation.py``), so an agent that is
        alive but cut off (a network partition) powers its domains off first: no instance
        ever runs on two hosts. Returns True when it fenced now. When contact returns, the
        next pass starts what is still assigned here and deletes what moved away.
        """
        if self._isolated or self._fence_after_s <= 0 or self._last_contact is None:
            return False
        silent = self.clock.monotonic() - self._last_contact
        if silent < self._fence_after_s:
            return False
        log.error(
            "no contact with the control plane for %.0f s (lease %.0f s): powering off all "
            "domains so they can be restarted elsewhere",
            silent,
            self._fence_after_s,
        )
        with self._pass_lock:
            for domain in self.driver.list_domains():
                if domain.state is not PowerState.STOPPED:
                    try:
                        self.driver.stop(domain.instance_id, force=True)
                    except DriverError as err:
                        log.error("instance=%s self-fence failed: %s", domain.instance_id, err)
        self._isolated = True
        return True

    def reconcile(self, assignments: AssignmentList) -> StatusReport:
        """One pass over ``assignments``: act on libvirt and return what to report.

        Raises DriverError only when the host cannot even be listed (nothing was changed
        and nothing should be reported); per-instance failures become ``error`` entries.
        """
        with self._pass_lock:
            return self._reconcile(assignments)

    def _reconcile(self, assignments: AssignmentList) -> StatusReport:
        domains = {d.instance_id: d for d in self.driver.list_domains()}
        wanted = {a.instance_id for a in assignments.assignments}
        for instance_id in sorted(set(domains) - wanted):
            self._fence(instance_id)
        statuses = [
            self._reconcile_one(a, domains.get(a.instance_id)) for a in assignments.assignments
        ]
        report = StatusReport(instances=statuses)
        self.passes += 1
        self.metrics.passes.inc()
        return report

    def _fence(self, instance_id: str) -> None:
        log.info("instance=%s action=fence reason=not assigned to this host", instance_id)
        try:
            self.driver.delete(instance_id)
        except DriverError as err:
            log.error("instance=%s action=fence failed: %s", instance_id, err.message)
            if err.temporary:
                self._retry_soon()

    def _reconcile_one(self, assignment: Assignment, domain: DomainInfo | None) -> InstanceStatus:
        instance_id = assignment.instance_id
        order = assignment.migration
        if order is not None and assignment.desired is not DesiredState.DELETED:
            if order.role is MigrationRole.SOURCE:
                return self._migrate_out(assignment, order, domain)
            if not assignment.create:
                return incoming_status(instance_id, domain)
        try:
            try:
                domain = self._apply(assignment, domain)
            except DomainNotFound:
                # Removed between listing and acting: decide again from "absent".
                domain = self._apply(assignment, None)
        except DriverError as err:
            hint = " (temporary; will retry)" if err.temporary else ""
            self.metrics.reconcile_errors.labels("instance").inc()
            log.error("instance=%s action=failed error=%s%s", instance_id, err.message, hint)
            if err.temporary:
                self._retry_soon()
            return InstanceStatus(
                instance_id=instance_id,
                state=ActualState.ERROR,
                reboot_seq=domain.reboot_seq if domain is not None else 0,
                message=clean_message(f"{err.message}{hint}"),
            )
        except Exception as err:  # a bug must not stop the other instances
            self.metrics.reconcile_errors.labels("instance").inc()
            log.exception("instance=%s action=failed unexpectedly", instance_id)
            return InstanceStatus(
                instance_id=instance_id,
                state=ActualState.ERROR,
                message=clean_message(f"agent error: {err!r}"),
            )
        message = ""
        if domain is None and assignment.desired is not DesiredState.DELETED:
            message = "domain not found on host; not recreated"
            log.warning("instance=%s action=none state=absent reason=vanished", instance_id)
        return observed_status(instance_id, domain, message=message)

    def _migrate_out(
        self, assignment: Assignment, order: MigrationOrder, domain: DomainInfo | None
    ) -> InstanceStatus:
        """The source side of a migration: live-migrate when the driver can reach the
        target; otherwise pause (live) or power off (cold) the copy here and report
        ``ready`` so the target may start its own. Never two running copies."""
        instance_id = assignment.instance_id
        if domain is None:
            return InstanceStatus(
                instance_id=instance_id,
                state=ActualState.ABSENT,
                migration=MigrationProgress.DONE,
                message="no domain here (already migrated)",
            )
        try:
            if (
                order.live
                and domain.state in (PowerState.RUNNING, PowerState.PAUSED)
                and self.driver.can_migrate_to(order.peer_uri)
            ):
                log.info(
                    "instance=%s action=migrate target=%s migration=%s",
                    instance_id,
                    order.peer_uri,
                    order.id,
                )
                self.driver.migrate(instance_id, order.peer_uri)
                return InstanceStatus(
                    instance_id=instance_id,
                    state=ActualState.ABSENT,
                    migration=MigrationProgress.DONE,
                    message=clean_message(f"live-migrated to {order.peer_uri}"),
                )
            if order.live:
                log.info("instance=%s action=pause reason=move migration=%s", instance_id, order.id)
                domain = self.driver.suspend(instance_id)
            elif domain.state is not PowerState.STOPPED:
                log.info(
                    "instance=%s action=stop reason=cold move migration=%s", instance_id, order.id
                )
                domain = self.driver.stop(instance_id)
        except DriverError as err:
            self.metrics.reconcile_errors.labels("instance").inc()
            log.error("instance=%s action=migrate failed: %s", instance_id, err.message)
            current = self.driver.get(instance_id) if not isinstance(err, DomainNotFound) else None
            return observed_status(instance_id, current).model_copy(
                update={
                    "migration": MigrationProgress.FAILED,
                    "message": clean_message(err.message),
                }
            )
        return observed_status(instance_id, domain).model_copy(
            update={"migration": MigrationProgress.READY}
        )

    def _apply(self, assignment: Assignment, domain: DomainInfo | None) -> DomainInfo | None:
        """Run the plan for one instance; return the domain as observed afterwards."""
        instance_id = assignment.instance_id
        steps = plan_instance(assignment, domain)
        for step in steps:
            log.info(
                "instance=%s action=%s name=%s reason=%s",
                instance_id,
                step.action.value,
                assignment.name,
                step.reason,
            )
            if step.action is Action.DELETE:
                self.driver.delete(instance_id)
                return None
            if step.action in (Action.DEFINE, Action.DEFINE_START):
                domain = self.driver.define(assignment, start=step.action is Action.DEFINE_START)
            elif step.action is Action.RESIZE:
                # Redefine with the new sizes, keeping the reboot_seq the domain has: the
                # steps after this one still decide about reboots as before.
                kept = self.driver.read_metadata(instance_id).reboot_seq
                domain = self.driver.define(
                    assignment.model_copy(update={"reboot_seq": kept}), start=False
                )
            elif step.action is Action.START:
                domain = self.driver.start(instance_id)
            elif step.action is Action.STOP:
                domain = self.driver.stop(instance_id)
            elif step.action is Action.REBOOT:
                domain = self.driver.reboot(instance_id, hard=self.settings.hard_reboot)
            elif step.action is Action.RECORD_REBOOT_SEQ:
                current = self.driver.read_metadata(instance_id)
                self.driver.write_metadata(
                    InstanceMetadata(
                        instance_id=instance_id,
                        name=current.name or assignment.name,
                        reboot_seq=assignment.reboot_seq,
                    )
                )
        if steps:
            domain = self.driver.get(instance_id)
        return domain

    def _retry_soon(self) -> None:
        soon = self.clock.monotonic() + min(self.settings.max_backoff_s, 5.0)
        self._next_pass_at = min(self._next_pass_at, soon)

    def sync(self, *, wait_s: float | None = None, force: bool = False) -> StatusReport | None:
        """Fetch assignments (long-polling up to ``wait_s``), reconcile and report.

        A pass runs when the generation changed, a resync is due, or ``force``; otherwise
        nothing happens and None is returned. ``wait_s`` defaults to the time left until
        the next resync, capped at ``poll_wait_s``.
        """
        credential = self.ensure_registered()
        now = self.clock.monotonic()
        if wait_s is None:
            wait_s = min(self.settings.poll_wait_s, max(0.0, self._next_pass_at - now))
        if force:
            wait_s = 0.0
        listing = self.control_plane.assignments(
            credential, generation=self._generation, wait_s=wait_s
        )
        if listing.host_id != credential.host_id:
            raise ControlPlaneError(
                f"assignments are for host {listing.host_id}, not this host "
                f"({credential.host_id}); refusing to reconcile (wrong control plane?)"
            )
        now = self.clock.monotonic()
        changed = listing.generation != self._generation
        if not (force or changed or now >= self._next_pass_at):
            return None
        previous_due = self._next_pass_at
        self._next_pass_at = now + self.settings.resync_interval_s
        report_all, self._report_all = self._report_all, False
        full = force or report_all or now >= previous_due or self._nudged(listing)
        try:
            report, after = self._pass(credential, listing, full=full)
        except BaseException:
            self.metrics.reconcile_errors.labels("pass").inc()
            self._next_pass_at = min(previous_due, now)  # still owed: retry without waiting
            self._report_all = self._report_all or report_all
            raise
        # The control plane answered the report with the assignments it left: when the
        # report moved the generation (a new domain no longer needs creating), reconcile
        # that list now rather than fetching it with another long-poll round trip.
        for _ in range(FOLLOW_UP_PASSES):
            if (
                after is None
                or after.host_id != credential.host_id
                or after.generation == self._generation
            ):
                break
            report, after = self._pass(credential, after, full=self._nudged(after))
        return report

    def _pass(
        self, credential: HostCredential, listing: AssignmentList, *, full: bool
    ) -> tuple[StatusReport, AssignmentList | None]:
        """Reconcile ``listing`` and report; returns the report and the control plane's
        answer to it (its assignments afterwards, when it sent them)."""
        report = self.reconcile(listing)
        after = self._report(credential, report, full=full)
        self.last_report = report
        self._last_listing = listing
        self._generation = listing.generation
        log.debug(
            "host=%s pass %d reported %d instance(s) at generation %d",
            credential.host_id,
            self.passes,
            len(report.instances),
            listing.generation,
        )
        return report, after

    def _nudged(self, listing: AssignmentList) -> bool:
        """True when the control plane wants to hear about every instance: the generation
        moved but the assignments did not (e.g. the host came back from DOWN and its
        instances are UNKNOWN), or an instance is migrating (both sides' reports drive
        the handoff)."""
        last = self._last_listing
        if last is None or last.assignments == listing.assignments:
            return True
        return any(a.migration is not None for a in listing.assignments)

    def _report(
        self, credential: HostCredential, report: StatusReport, *, full: bool
    ) -> AssignmentList | None:
        """Send ``report``: all of it when ``full``, else only the instances whose status
        differs from the last one the control plane acknowledged (nothing at all when none
        does). One status POST per pass at most; a new instance costs one report of it.
        Returns the control plane's assignments after the report, when it sent them."""
        if full:
            batch = report.instances
        else:
            batch = [s for s in report.instances if self._posted.get(s.instance_id) != s]
        after = None
        if batch:
            after = self.control_plane.report_status(credential, StatusReport(instances=batch))
            self.reports_sent += 1
        self._posted = {s.instance_id: s for s in report.instances}
        return after

    def run_once(self) -> StatusReport:
        """Register if needed, heartbeat, then one full reconcile pass (``--once``)."""
        credential = self.ensure_registered()
        try:
            self.heartbeat()
        except ControlPlaneError as err:
            log.warning("host=%s heartbeat failed: %s", credential.host_id, err)
        report = self.sync(force=True)
        assert report is not None  # force always reconciles
        return report

    # -- loops ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat and reconcile loops in daemon threads."""
        if self._threads:
            raise RuntimeError("agent already started")
        self._stopping.clear()
        for target, role in (
            (self._reconcile_loop, "reconcile"),
            (self._heartbeat_loop, "heartbeat"),
        ):
            thread = threading.Thread(
                target=target, name=f"govcloud-agent-{role}-{self.settings.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def request_stop(self) -> None:
        """Flag the loops to end without waiting (safe from a signal handler)."""
        self._stopping.set()
        self._registered.set()  # release a heartbeat loop still waiting for registration

    def stop(self, timeout_s: float | None = None) -> bool:
        """Ask the loops to end; wait for a running pass to finish and the threads to exit.

        A long-poll in flight is not interrupted: the reconcile thread exits when it
        returns (at most ``poll_wait_s`` plus the HTTP timeout). Returns True if every
        thread ended within ``timeout_s`` (default: ``poll_wait_s + 15``); the threads
        are daemons, so a process may exit regardless.
        """
        self.request_stop()
        budget = self.settings.poll_wait_s + 15.0 if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("agent threads still running after %.1f s: %s", budget, ", ".join(alive))
            return False
        self._threads = []
        return True

    def run_forever(self) -> None:
        """:meth:`start`, then block until :meth:`stop` is called (e.g. by a signal)."""
        self.start()
        while not self.clock.wait(self._stopping, 3600.0):
            pass

    @contextlib.contextmanager
    def running(self) -> Iterator[Agent]:
        """``with agent.running(): ...`` starts the loops and stops them on exit."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _backoff(self, failures: int) -> float:
        return float(min(self.settings.max_backoff_s, 0.5 * 2 ** min(failures, 16)))

    def _reconcile_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.sync()
                failures = 0
                continue
            except AuthenticationFailed as err:
                log.error(
                    "control plane refused this host's credentials (%s); fix the credential "
                    "file or re-enrol the host",
                    err,
                )
                delay = self.settings.max_backoff_s
            except AgentConfigError as err:
                log.error("%s", err)
                delay = self.settings.max_backoff_s
            except (ControlPlaneError, DriverError) as err:
                failures += 1
                delay = self._backoff(failures)
                log.warning("reconcile: %s; retrying in %.1f s", err, delay)
            except Exception:
                failures += 1
                delay = self._backoff(failures)
                log.exception("reconcile loop failed; retrying in %.1f s", delay)
            self.clock.wait(self._stopping, delay)

    def _heartbeat_loop(self) -> None:
        while not self._registered.is_set():
            self.clock.wait(self._registered, 3600.0)
        failures = 0
        while not self._stopping.is_set():
            interval = self._heartbeat_interval_s
            try:
                self.heartbeat()
                failures = 0
            except AuthenticationFailed as err:
                log.error("heartbeat refused: %s", err)
            except ControlPlaneError as err:
                failures += 1
                interval = min(interval, self._backoff(failures))
                log.warning("heartbeat failed: %s; next in %.1f s", err, interval)
                self.check_isolation()
            except Exception:
                log.exception("heartbeat failed unexpectedly")
            self.clock.wait(self._stopping, interval)
