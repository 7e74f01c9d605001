"""Control-plane settings (environment variables ``GOVCLOUD_*``), passed in explicitly.

Nothing reads settings globally: ``create_app(settings, ...)`` and the CLI build one
``Settings`` and hand it down, so tests can run many control planes in one process.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    heartbeat_interval_s: float = Field(10.0, gt=0)
    #: Longest an agent's assignment long-poll may wait.
    max_poll_wait_s: float = Field(30.0, ge=0)
    #: How often the pending-placement loop retries PENDING instances.
    pending_retry_interval_s: float = Field(5.0, gt=0)
    #: Bounded retries when a placement commit loses a race.
    placement_max_attempts: int = Field(5, ge=1, le=50)
    #: Seed for the scheduler's shuffle among equal hosts (replayable decisions).
    scheduler_seed: int = 0
    #: Start background loops (pending retries) inside the API process.
    run_loops: bool = True
