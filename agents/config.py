"""Agent settings: environment variables ``GOVCLOUD_AGENT_*`` and an optional YAML file.

Owns :class:`AgentSettings` and how it is loaded. Precedence, highest first: keyword
arguments, environment (nested fields as ``GOVCLOUD_AGENT_CAPACITY__VCPUS=8`` or JSON in
``GOVCLOUD_AGENT_CAPACITY``), the YAML file given with ``--config``, defaults. Nothing
reads settings globally: the agent receives one ``AgentSettings`` object.

``libvirt_uri`` left unset means *simulated host*: the agent writes a libvirt test-driver
``host.xml`` into ``state_dir`` from ``capacity`` and opens ``test:///<state_dir>/host.xml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agents.lease import LEASE_FILE
from controlplane.domain.evacuation import WATCHDOG_MAX_LAG_S
from controlplane.domain.names import Name, Trait
from controlplane.domain.resources import Resources

CREDENTIAL_FILE = "credential.json"
SERIAL_DIR = "serial"


class Capacity(BaseModel):
    """What the host offers to the scheduler."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vcpus: int = Field(ge=1, le=1_000_000)
    ram_mib: int = Field(ge=1, le=1_000_000_000)
    disk_gib: int = Field(0, ge=0, le=1_000_000_000)

    def resources(self) -> Resources:
        """As the domain's resource vector."""
        return Resources(vcpus=self.vcpus, ram_mib=self.ram_mib, disk_gib=self.disk_gib)


class AgentSettings(BaseSettings):
    """Everything a host agent can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="GOVCLOUD_AGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    #: Base URL of the control plane, e.g. ``https://govcloud.example:8443``.
    control_plane_url: str = Field(min_length=1)
    #: One-time token from ``govcloud host token create`` (``host enrol`` issues one);
    #: needed only until the host has registered and stored its credential.
    bootstrap_token: SecretStr | None = None
    #: The host's name in the control plane.
    name: Name
    capacity: Capacity
    traits: list[Trait] = []
    #: None: simulated host (libvirt test driver on a generated ``host.xml``).
    libvirt_uri: str | None = None
    #: Domain type in the XML; default ``test`` when simulated, ``kvm`` otherwise.
    domain_type: Literal["test", "qemu", "kvm"] | None = None
    #: Credential file, simulated ``host.xml`` and serial-console logs live here.
    state_dir: Path = Path("/var/lib/govcloud-agent")
    #: Write each guest's serial console to ``<state_dir>/serial/gc-<id>.log``.
    serial_log: bool = True
    #: TCG translation-block cache (MiB) for ``qemu`` guests; None keeps QEMU's default.
    tcg_tb_cache_mib: int | None = Field(None, ge=1, le=4096)
    #: Guest architecture for ``qemu``/``kvm`` domains (None: the host's).
    guest_arch: str | None = Field(None, pattern=r"^[a-z0-9_]{1,32}$")
    #: Used until the control plane sends its own interval (registration, heartbeat acks).
    heartbeat_interval_s: float = Field(10.0, gt=0)
    #: How long one assignments long-poll may wait for a change.
    poll_wait_s: float = Field(30.0, ge=0)
    #: Reconcile at least this often even when nothing changed (lost events, drift).
    resync_interval_s: float = Field(30.0, gt=0)
    #: Graceful shutdown budget before a domain is destroyed.
    stop_timeout_s: float = Field(60.0, ge=0)
    #: Reboot with a reset instead of asking the guest. Guests that ignore ACPI (the busybox
    #: tiny guest does) silently skip a soft reboot, and libvirt cannot tell.
    hard_reboot: bool = False
    #: Longest delay between retries after the control plane or libvirt failed.
    max_backoff_s: float = Field(30.0, gt=0)
    #: Port of the agent's Prometheus ``/metrics`` endpoint; None (default) serves none.
    #: The documented port is 9273; 0 picks a free one (tests).
    metrics_port: int | None = Field(None, ge=0, le=65535)
    #: Address the metrics endpoint listens on (loopback unless set otherwise).
    metrics_address: str = "127.0.0.1"
    #: Fence lease refreshed after every acknowledged heartbeat and watched by
    #: ``govcloud-fence`` (agents/lease.py, agents/watchdog.py); default
    #: ``<state_dir>/fence-lease.json``.
    fence_lease_file: Path | None = None
    #: How often ``govcloud-fence`` checks the lease: at most WATCHDOG_MAX_LAG_S, which the
    #: control plane's evacuation margin exceeds (see controlplane/domain/evacuation.py).
    fence_check_interval_s: float = Field(1.0, gt=0)

    @field_validator("control_plane_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("control_plane_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("fence_check_interval_s")
    @classmethod
    def _watchdog_within_margin(cls, value: float) -> float:
        if value > WATCHDOG_MAX_LAG_S:
            raise ValueError(
                f"fence_check_interval_s ({value} s) must be at most {WATCHDOG_MAX_LAG_S} s: "
                "the control plane restarts a silent host's instances elsewhere after the "
                f"fencing lease plus a margin longer than {WATCHDOG_MAX_LAG_S} s, and the "
                "watchdog must have destroyed them by then"
            )
        return value

    @model_validator(mode="after")
    def _domain_type_fits_uri(self) -> AgentSettings:
        if self.domain_type == "test" and not self.simulated and not self.uri_is_test:
            raise ValueError("domain_type 'test' needs the libvirt test driver (test:///...)")
        return self

    @property
    def simulated(self) -> bool:
        """True when the agent runs a libvirt test-driver host it generates itself."""
        return self.libvirt_uri is None

    @property
    def uri_is_test(self) -> bool:
        """True when the configured URI is the libvirt test driver."""
        return self.libvirt_uri is not None and self.libvirt_uri.startswith("test:")

    @property
    def effective_domain_type(self) -> Literal["test", "qemu", "kvm"]:
        """``domain_type``, or its default for the URI."""
        if self.domain_type is not None:
            return self.domain_type
        return "test" if self.simulated or self.uri_is_test else "kvm"

    @property
    def credential_path(self) -> Path:
        """Where the host credential is stored (mode 0600)."""
        return self.state_dir / CREDENTIAL_FILE

    @property
    def fence_lease_path(self) -> Path:
        """Where the agent writes its fence lease and ``govcloud-fence`` reads it."""
        if self.fence_lease_file is None:
            return self.state_dir / LEASE_FILE
        return self.fence_lease_file.expanduser().absolute()

    @property
    def serial_dir(self) -> Path | None:
        """Directory of serial-console logs, or None when disabled."""
        return self.state_dir / SERIAL_DIR if self.serial_log else None

    @classmethod
    def load(cls, config_file: Path | str | None = None, **overrides: Any) -> AgentSettings:
        """Settings from ``overrides``, the environment and ``config_file`` (YAML)."""
        if config_file is None:
            return cls(**overrides)
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"agent config file {path} does not exist")

        class _WithYaml(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(title=cls.__name__)  # in error messages

            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - not used
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=path)
                return (init_settings, env_settings, yaml_source, file_secret_settings)

        loaded = _WithYaml(**overrides)
        return cls.model_validate(
            {
                **loaded.model_dump(exclude={"bootstrap_token"}),
                "bootstrap_token": loaded.bootstrap_token,
            }
        )
