"""The libvirt host driver: the only module in govcloud that imports ``libvirt``.

Owns every libvirt call the agent makes and the translation of libvirt's errors into
:class:`~agents.drivers.base.DriverError` (temporary vs permanent). The same code drives
simulated hosts (the test driver, ``test:///abs/path/host.xml``) and real ones
(``qemu:///system``, ``qemu+tcp://.../session``); only the URI and the domain type in
:class:`~agents.drivers.domainxml.DomainXmlOptions` differ.

Only ``gc-*`` domains are listed or touched. The connection is opened at construction and
re-opened transparently if a remote libvirtd went away (never for ``test:///`` URIs, whose
state would be lost by re-opening).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import libvirt

from agents.drivers.base import (
    DomainInfo,
    DomainNotFound,
    DriverError,
    InstanceMetadata,
    PermanentDriverError,
    PowerState,
    TemporaryDriverError,
    domain_name,
    instance_id_of,
    is_managed,
)
from agents.drivers.domainxml import (
    METADATA_KEY,
    METADATA_NS,
    DomainXmlOptions,
    InvalidDomainSpec,
    build_domain_xml,
    metadata_xml,
    parse_metadata,
)
from agents.protocol.v1 import Assignment

log = logging.getLogger(__name__)

_STATES: dict[int, PowerState] = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PAUSED,
}

#: libvirt error numbers that mean "try again later" (connection, RPC, timeouts, locks).
_TEMPORARY_CODES: frozenset[int] = frozenset(
    code
    for code in (
        getattr(libvirt, name, None)
        for name in (
            "VIR_ERR_NO_CONNECT",
            "VIR_ERR_INVALID_CONN",
            "VIR_ERR_SYSTEM_ERROR",
            "VIR_ERR_RPC",
            "VIR_ERR_OPERATION_TIMEOUT",
            "VIR_ERR_OPERATION_ABORTED",
            "VIR_ERR_AGENT_UNRESPONSIVE",
            "VIR_ERR_RESOURCE_BUSY",
            "VIR_ERR_AUTH_UNAVAILABLE",
        )
    )
    if isinstance(code, int)
)

_BASIC_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)
#: Undefine flags tried in order: hypervisors refuse flags they don't know (the test
#: driver has no NVRAM or checkpoints) with VIR_ERR_INVALID_ARG.
_UNDEFINE_FLAG_SETS: tuple[int, ...] = (
    _BASIC_UNDEFINE_FLAGS
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
    _BASIC_UNDEFINE_FLAGS,
    0,
)

_error_handler_lock = threading.Lock()
_error_handler_installed = False


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; ours become exceptions."""


def _silence_default_error_handler() -> None:
    # Process-wide in libvirt itself (not our state): install once, idempotently.
    global _error_handler_installed
    with _error_handler_lock:
        if not _error_handler_installed:
            libvirt.registerErrorHandler(_ignore_libvirt_error, None)
            _error_handler_installed = True


def translate_error(err: libvirt.libvirtError, *, instance_id: str | None = None) -> DriverError:
    """The DriverError for a libvirt error: not-found, temporary or permanent."""
    code = err.get_error_code()
    message = err.get_error_message() or str(err)
    if code == libvirt.VIR_ERR_NO_DOMAIN and instance_id is not None:
        return DomainNotFound(instance_id)
    if code in _TEMPORARY_CODES or err.get_error_domain() == libvirt.VIR_FROM_RPC:
        return TemporaryDriverError(message, instance_id=instance_id, code=code)
    return PermanentDriverError(message, instance_id=instance_id, code=code)


class LibvirtDriver:
    """:class:`~agents.drivers.base.HostDriver` over one libvirt connection."""

    def __init__(
        self,
        uri: str,
        options: DomainXmlOptions | None = None,
        *,
        stop_timeout_s: float = 60.0,
        stop_poll_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _silence_default_error_handler()
        self._uri = uri
        self.options = options if options is not None else DomainXmlOptions()
        self.stop_timeout_s = stop_timeout_s
        self._stop_poll_s = stop_poll_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn: Any = self._open()

    # -- connection -------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The libvirt URI this driver is connected to."""
        return self._uri

    @property
    def connection(self) -> Any:
        """The raw ``virConnect`` (for tests and diagnostics; do not use it to manage
        ``gc-*`` domains behind the driver's back unless that is what is being tested)."""
        return self._connection()

    def _open(self) -> Any:
        try:
            return libvirt.open(self._uri)
        except libvirt.libvirtError as err:
            raise TemporaryDriverError(
                f"cannot connect to libvirt at {self._uri}: {err.get_error_message() or err}",
                code=err.get_error_code(),
            ) from err

    def _connection(self) -> Any:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise PermanentDriverError(f"the driver for {self._uri} has been closed")
            if self._uri.startswith("test:"):
                return conn
            try:
                alive = bool(conn.isAlive())
            except libvirt.libvirtError:
                alive = False
            if not alive:
                log.warning("libvirt connection to %s lost; reconnecting", self._uri)
                try:
                    conn.close()
                except libvirt.libvirtError:
                    log.debug("closing the dead connection failed", exc_info=True)
                self._conn = self._open()
            return self._conn

    def close(self) -> None:
        """Close the connection for good (a ``test:///`` host's domains vanish with it)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                log.debug("closing libvirt connection failed", exc_info=True)

    # -- reading ----------------------------------------------------------------------

    def _lookup(self, instance_id: str) -> Any:
        try:
            return self._connection().lookupByName(domain_name(instance_id))
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err

    @staticmethod
    def _state(dom: Any) -> PowerState:
        state, _reason = dom.state()
        return _STATES.get(int(state), PowerState.UNKNOWN)

    @staticmethod
    def _metadata(dom: Any, instance_id: str) -> InstanceMetadata:
        try:
            xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return InstanceMetadata(instance_id=instance_id, name="", reboot_seq=0)
            raise
        return parse_metadata(str(xml), instance_id=instance_id)

    def _info(self, dom: Any, instance_id: str) -> DomainInfo:
        try:
            # [state, max memory KiB, memory KiB, vCPUs, CPU time]: the live sizes while
            # the domain runs, its persistent definition while it is shut off.
            _, max_kib, _, vcpus, _ = dom.info()
            return DomainInfo(
                instance_id=instance_id,
                domain_name=domain_name(instance_id),
                state=self._state(dom),
                metadata=self._metadata(dom, instance_id),
                vcpus=int(vcpus) or None,
                ram_mib=int(max_kib) // 1024 or None,
            )
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err

    def list_domains(self) -> list[DomainInfo]:
        """Every ``gc-*`` domain, sorted by instance id; others are invisible."""
        try:
            domains = self._connection().listAllDomains(0)
        except libvirt.libvirtError as err:
            raise translate_error(err) from err
        found: list[DomainInfo] = []
        for dom in domains:
            try:
                name = str(dom.name())
            except libvirt.libvirtError:
                continue  # vanished while listing
            if not is_managed(name):
                continue
            try:
                found.append(self._info(dom, instance_id_of(name)))
            except DomainNotFound:
                continue
        found.sort(key=lambda d: d.instance_id)
        return found

    def get(self, instance_id: str) -> DomainInfo | None:
        """The instance's domain, or None."""
        try:
            dom = self._lookup(instance_id)
            return self._info(dom, instance_id)
        except DomainNotFound:
            return None

    # -- changing ---------------------------------------------------------------------

    def define(self, assignment: Assignment, *, start: bool) -> DomainInfo:
        """Define (or redefine) the domain for ``assignment``; start it if asked."""
        instance_id = assignment.instance_id
        try:
            xml = build_domain_xml(assignment, self.options)
        except InvalidDomainSpec as err:
            raise PermanentDriverError(str(err), instance_id=instance_id) from err
        try:
            dom = self._connection().defineXML(xml)
            if start and not dom.isActive():
                dom.create()
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
        return self._info(dom, instance_id)

    def start(self, instance_id: str) -> DomainInfo:
        """Boot, resume or restart (if crashed) the domain until it runs."""
        dom = self._lookup(instance_id)
        try:
            state = self._state(dom)
            if state is PowerState.PAUSED:
                if int(dom.state()[0]) == libvirt.VIR_DOMAIN_PMSUSPENDED:
                    dom.pMWakeup(0)
                else:
                    dom.resume()
            elif state in (PowerState.CRASHED, PowerState.SHUTTING_DOWN, PowerState.UNKNOWN):
                if dom.isActive():
                    dom.destroy()
                dom.create()
            elif state is PowerState.STOPPED:
                dom.create()
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
        return self._info(dom, instance_id)

    def stop(self, instance_id: str, *, force: bool = False) -> DomainInfo:
        """Shut off: ACPI shutdown, destroy after ``stop_timeout_s``; destroy if ``force``."""
        dom = self._lookup(instance_id)
        try:
            if not dom.isActive():
                return self._info(dom, instance_id)
            graceful = not force and self._state(dom) is PowerState.RUNNING
            if graceful:
                self._shutdown_and_wait(dom, instance_id)
            if dom.isActive():
                self._destroy(dom, instance_id)
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
        return self._info(dom, instance_id)

    def _shutdown_and_wait(self, dom: Any, instance_id: str) -> None:
        try:
            dom.shutdown()
        except libvirt.libvirtError:
            if not dom.isActive():
                return  # it went down on its own meanwhile
            raise
        deadline = self._monotonic() + self.stop_timeout_s
        while dom.isActive() and self._monotonic() < deadline:
            self._sleep(self._stop_poll_s)
        if dom.isActive():
            log.warning(
                "instance=%s graceful shutdown did not finish in %.0f s; destroying",
                instance_id,
                self.stop_timeout_s,
            )

    @staticmethod
    def _destroy(dom: Any, instance_id: str) -> None:
        try:
            dom.destroy()
        except libvirt.libvirtError:
            if dom.isActive():
                raise
            log.debug("instance=%s was already off when destroyed", instance_id)

    def reboot(self, instance_id: str, *, hard: bool = False) -> DomainInfo:
        """Reboot (guest-cooperative) or reset (``hard``) a running domain."""
        dom = self._lookup(instance_id)
        try:
            if self._state(dom) is not PowerState.RUNNING:
                raise PermanentDriverError(
                    f"cannot reboot {domain_name(instance_id)}: it is not running",
                    instance_id=instance_id,
                )
            if hard:
                dom.reset(0)
            else:
                dom.reboot(0)
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
        return self._info(dom, instance_id)

    def delete(self, instance_id: str) -> bool:
        """Destroy (if running) and undefine (if persistent); False if absent."""
        try:
            dom = self._lookup(instance_id)
        except DomainNotFound:
            return False
        try:
            if dom.isActive():
                self._destroy(dom, instance_id)
            if dom.isPersistent():
                self._undefine(dom)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return True  # removed concurrently: the outcome we wanted
            raise translate_error(err, instance_id=instance_id) from err
        return True

    # -- migration --------------------------------------------------------------------

    def suspend(self, instance_id: str) -> DomainInfo:
        """Pause a running domain (a no-op if it is not running)."""
        dom = self._lookup(instance_id)
        try:
            if self._state(dom) is PowerState.RUNNING:
                dom.suspend()
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
        return self._info(dom, instance_id)

    def can_migrate_to(self, target_uri: str) -> bool:
        """True between two real daemons (the test driver's hosts cannot reach each
        other: the agent then moves the domain by define-on-target instead)."""
        return bool(target_uri) and not (
            self._uri.startswith("test:") or target_uri.startswith("test:")
        )

    def migrate(self, instance_id: str, target_uri: str) -> None:
        """Peer-to-peer live migration to ``target_uri`` (the source daemon connects to
        the target daemon itself): the domain is defined persistently there and undefined
        here once it runs there. The memory goes over TCP to the target URI's host."""
        dom = self._lookup(instance_id)
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PEER2PEER
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        )
        # A URI without a host (a local socket) names a daemon on this machine: stream
        # the memory over loopback rather than to whatever the hostname resolves to.
        host = urlsplit(target_uri).hostname or "127.0.0.1"
        params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{host}"}
        try:
            dom.migrateToURI3(target_uri, params, flags)
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err

    @staticmethod
    def _undefine(dom: Any) -> None:
        for flags in _UNDEFINE_FLAG_SETS:
            try:
                dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as err:
                if flags == 0 or err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise

    def read_metadata(self, instance_id: str) -> InstanceMetadata:
        """govcloud's metadata in the domain (defaults if it has none)."""
        dom = self._lookup(instance_id)
        try:
            return self._metadata(dom, instance_id)
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err

    def write_metadata(self, metadata: InstanceMetadata) -> None:
        """Store ``metadata`` in the live and the persistent definition."""
        instance_id = metadata.instance_id
        dom = self._lookup(instance_id)
        try:
            flags = 0
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            if dom.isPersistent():
                flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                metadata_xml(metadata),
                METADATA_KEY,
                METADATA_NS,
                flags,
            )
        except libvirt.libvirtError as err:
            raise translate_error(err, instance_id=instance_id) from err
