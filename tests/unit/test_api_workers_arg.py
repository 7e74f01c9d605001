"""``govcloud-api --workers`` / ``GOVCLOUD_API_WORKERS`` and the ``GOVCLOUD_*`` settings: a bad
value is refused by name and value before anything starts, without a traceback."""

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


def test_bad_setting_is_refused_by_name_without_a_traceback(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GOVCLOUD_DATABASE_URL": f"sqlite:///{tmp_path}/unused.db",
        "GOVCLOUD_AUTH_CACHE_TTL_S": "-1",
        "GOVCLOUD_ACCESS_LOG": "maybe",
    }
    done = subprocess.run([str(API)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "GOVCLOUD_AUTH_CACHE_TTL_S='-1': Input should be greater than or equal to 0" in (
        done.stderr
    )
    assert "GOVCLOUD_ACCESS_LOG='maybe'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "unused.db").exists()  # refused before anything started
