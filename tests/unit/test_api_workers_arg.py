"""``govcloud-api --workers`` / ``GOVCLOUD_API_WORKERS``: a bad value is refused by name and
value before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

API = Path(sys.executable).parent / "govcloud-api"


@pytest.mark.parametrize(
    ("args", "env"), [(["--workers", "0"], {}), ([], {"GOVCLOUD_API_WORKERS": "two"})]
)
def test_bad_worker_count_is_refused(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(API), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "must be an integer of at least 1" in done.stderr
    assert ("'0'" if args else "'two'") in done.stderr
