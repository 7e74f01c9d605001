"""The fence lease file: the agent's proof of life for the host-side fence watchdog.

Owns the file format and its atomic write and tolerant read. After every heartbeat the
control plane acknowledged, the agent writes (``write_lease``) the lease the ack granted
(``fence_after_s``: 0 when nothing on this host would be restarted elsewhere) and the
time; ``govcloud-fence`` (``agents/watchdog.py``) reads it (``read_lease``) and, once the
lease has not been refreshed for ``fence_after_s``, destroys the host's ``gc-*`` domains,
because the control plane may restart them elsewhere. One small JSON document, replaced
with a rename so a reader never sees half of it::

    {"host": "tpe1-h01", "acked_at": 1764158400.25, "fence_after_s": 30.0}
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

LEASE_FILE = "fence-lease.json"


class FenceLease(BaseModel):
    """What the agent last heard from the control plane."""

    model_config = ConfigDict(frozen=True)

    host: str = ""
    #: Wall-clock time (epoch seconds) of the acknowledged heartbeat.
    acked_at: float
    #: The control plane's self-fencing lease; 0 means never fence.
    fence_after_s: float = Field(ge=0)


def write_lease(
    path: Path, host: str, fence_after_s: float, *, wall: Callable[[], float] = time.time
) -> bool:
    """Replace the lease file atomically; False (logged) when it could not be written:
    a full disk must not stop heartbeats, and the watchdog then fences, which is safe."""
    lease = FenceLease(host=host, acked_at=wall(), fence_after_s=max(0.0, fence_after_s))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(lease.model_dump_json())
        os.replace(tmp, path)
    except OSError as err:
        log.error("cannot write the fence lease %s: %s", path, err)
        return False
    return True


def read_lease(path: Path) -> FenceLease | None:
    """The lease, or None when the file is missing or unreadable."""
    try:
        return FenceLease.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as err:
        log.warning("fence lease %s unreadable: %s", path, err)
        return None
