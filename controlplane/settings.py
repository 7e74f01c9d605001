"""Control-plane settings (environment variables ``GOVCLOUD_*``), passed in explicitly.

Nothing reads settings globally: ``create_app(settings, ...)`` and the CLI build one
``Settings`` and hand it down, so tests can run many control planes in one process.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.domain.datacentre import PlacementPolicy


def default_database_url() -> str:
    """The embedded default: a SQLite file in the user's data directory."""
    data = Path.home() / ".local" / "share" / "govcloud"
    return f"sqlite:///{data / 'govcloud.db'}"


class Settings(BaseSettings):
    """Everything the control plane can be configured with."""

    model_config = SettingsConfigDict(env_prefix="GOVCLOUD_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    #: Token of the built-in platform admin created on first start (if set).
    admin_token: str | None = Field(None, min_length=16)
    #: How often agents heartbeat (sent to them at registration and in every ack).
    heartbeat_interval_s: float = Field(4.0, gt=0)
    #: A host silent this long is SUSPECT (no new placements).
    host_suspect_after_s: float = Field(8.0, gt=0)
    #: A host silent this long is DOWN and its instances UNKNOWN (must exceed the above).
    host_down_after_s: float = Field(12.0, gt=0)
    #: How often each replica sweeps for silent hosts.
    liveness_interval_s: float = Field(1.0, gt=0)
    #: Self-fencing lease of agents in restart-elsewhere data centres: an agent that cannot
    #: reach the control plane this long powers its domains off (must exceed the DOWN time).
    host_fence_after_s: float = Field(30.0, gt=0)
    #: Evacuation waits this long beyond the lease before restarting instances elsewhere.
    evacuation_margin_s: float = Field(15.0, gt=0)
    #: How often each replica advances drains and checks in-flight migrations.
    drain_interval_s: float = Field(2.0, gt=0)
    #: A migration still in flight after this long is rolled back (the instance stays put).
    migration_timeout_s: float = Field(600.0, gt=0)
    #: Longest an agent's assignment long-poll may wait.
    max_poll_wait_s: float = Field(30.0, ge=0)
    #: How often the pending-placement loop retries PENDING instances.
    pending_retry_interval_s: float = Field(5.0, gt=0)
    #: Bounded retries when a placement commit loses a race.
    placement_max_attempts: int = Field(5, ge=1, le=50)
    #: Seed for the scheduler's shuffle among equal hosts (replayable decisions).
    scheduler_seed: int = 0
    #: Placement policy when neither the request nor its data centre names one.
    scheduler_default_policy: PlacementPolicy = PlacementPolicy.SPREAD
    #: A PENDING request waiting longer than this (that would fit once room frees) holds
    #: back younger requests for its data centre, so it is not starved (0: never).
    pending_hold_after_s: float = Field(300.0, ge=0)
    #: How long a replica reuses its fleet snapshot between decisions when the fleet epoch
    #: did not move (it then misses only other replicas' claims, which every claim
    #: re-checks); 0: read the fleet for every decision.
    scheduler_snapshot_max_age_s: float = Field(5.0, ge=0, le=300)
    #: SLA targets (service classes per ministry, YAML); None: the packaged
    #: controlplane/sla/targets.yaml.
    sla_targets_file: Path | None = None
    #: Cloud Open Lab: how often the trial expiry loop runs.
    lab_loop_interval_s: float = Field(60.0, gt=0)
    #: Warn this many hours before a trial ends (each once per end time).
    lab_warning_hours: list[int] = Field(default_factory=lambda: [72, 24])
    #: Hours after a trial's end before its servers are deleted.
    lab_grace_hours: int = Field(168, ge=0)
    #: Longest life of a trial from activation, extensions included (hours).
    lab_max_life_hours: int = Field(2160, ge=1)
    #: Start background loops (pending retries) inside the API process.
    run_loops: bool = True
    #: Seconds a verified bearer token is trusted without the database (0: never). A token
    #: revoked through another replica stops working at the latest this long after.
    auth_cache_ttl_s: float = Field(5.0, ge=0, le=300)
    #: uvicorn's access log (one INFO line per request) of ``govcloud-api``.
    access_log: bool = False
