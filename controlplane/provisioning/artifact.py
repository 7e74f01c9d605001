"""The agent wheel that the ``enrol`` and ``upgrade-agent`` playbooks install on real hosts.

Owns :func:`build_agent_wheel`: ``pip wheel --no-deps`` of this checkout into a directory
(the wheel holds the ``govcloud`` distribution; the host's pip installs it with the
``[libvirt]`` extra and fetches the dependencies from PyPI or the mirror given in
``govcloud_pip_extra_args``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controlplane.provisioning.runner import ProvisioningError


def source_root() -> Path | None:
    """The checkout this package runs from (None when installed from a wheel)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_agent_wheel(out_dir: Path, *, timeout_s: float = 300.0) -> Path:
    """Build the govcloud wheel from this checkout into ``out_dir``; return its path."""
    root = source_root()
    if root is None:
        raise ProvisioningError(
            "not running from a govcloud checkout, so no agent wheel can be built; "
            "pass --agent-wheel FILE"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--quiet", "--wheel-dir", str(out_dir), str(root),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    wheels = sorted(out_dir.glob("govcloud-*.whl"), key=lambda p: p.stat().st_mtime)
    if done.returncode != 0 or not wheels:
        raise ProvisioningError(f"building the agent wheel failed: {done.stderr.strip()[-800:]}")
    return wheels[-1]
