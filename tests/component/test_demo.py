"""``govcloud demo`` end to end: a real control-plane process and real ``govcloud-agent``
processes on the libvirt test driver.

One test runs :func:`controlplane.cli.demo.run_demo` in-process and checks what it built;
the other runs ``govcloud demo --serve`` as a subprocess, drives it over HTTP with the
CLI, interrupts it like Ctrl-C and checks that nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from controlplane.cli import demo_data as data
from controlplane.cli.demo import DemoOptions, run_demo
from controlplane.domain.instance import InstanceState
from controlplane.domain.resources import Resources

pytest.importorskip("libvirt", reason="the demo's agents need libvirt-python")

HOSTS_PER_DC = 2


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (our children name their
    work directory in their arguments or configuration path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_places_every_server_reports_the_unplaceable_one_and_cleans_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_demo(DemoOptions(workdir=tmp_path, hosts_per_dc=HOSTS_PER_DC))

    assert sorted({h.datacentre for h in result.hosts}) == sorted(
        dc.code for dc in data.DATACENTRES
    )
    assert len(result.hosts) == HOSTS_PER_DC * len(data.DATACENTRES)
    by_name = {i.name: i for i in result.instances}
    assert set(by_name) == {s.name for s in data.SERVERS}
    for spec in data.SERVERS:
        inst = by_name[spec.name]
        assert inst.created_by == data.admin_of(spec.ministry)
        assert inst.org_path.split("/")[1] == spec.ministry
        if not spec.placeable:
            assert inst.state is InstanceState.PENDING
            assert inst.host is None
            assert inst.pending_reason is not None
            assert "no valid host among" in inst.pending_reason
            continue
        assert inst.state is InstanceState.RUNNING, (inst.name, inst.state, inst.fault)
        if spec.dc is not None:
            assert inst.datacentre == spec.dc

    # What each host says it has allocated is exactly what runs on it.
    placed: dict[str, Resources] = defaultdict(Resources)
    for inst in result.instances:
        if inst.host_name:
            placed[inst.host_name] = placed[inst.host_name] + inst.resources
    for host in result.hosts:
        assert host.used == placed[host.name], host.name

    assert set(result.user_tokens) == {data.admin_of(m) for m in data.ORG_TREE} | {data.AUDITOR}
    out = capsys.readouterr().out
    assert "What went where" in out
    assert "Per-host utilisation" in out
    assert "genome-analytics-01 is PENDING" in out

    assert _processes_mentioning(str(tmp_path)) == []
    assert (tmp_path / "logs" / "api.log").is_file()
    assert len(list((tmp_path / "logs").glob("agent-*.log"))) == len(result.hosts)


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            pytest.fail(f"demo exited {proc.returncode} before {text!r}:\n{content}")
        time.sleep(0.2)
    pytest.fail(f"no {text!r} after {timeout_s} s:\n{path.read_text(errors='replace')}")


def test_demo_serve_is_usable_from_the_cli_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    govcloud = [sys.executable, "-c", "from controlplane.cli.main import run; run()"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCLOUD_")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *govcloud,
                "demo",
                "--serve",
                "--workdir",
                str(workdir),
                "--hosts-per-dc",
                str(HOSTS_PER_DC),
            ],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    try:
        _wait_for(err, "Press Ctrl-C to stop", proc, timeout_s=120)
        exports = [
            line.strip() for line in out.read_text().splitlines() if "export GOVCLOUD_URL" in line
        ]
        assert len(exports) == 1
        settings = dict(part.split("=", 1) for part in exports[0].split()[1:])
        listed = subprocess.run(
            [*govcloud, "server", "list", "--org", "moi", "-o", "json"],
            env=env | settings | {"GOVCLOUD_CONFIG": str(tmp_path / "cli.yaml")},
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr.decode()
        servers = json.loads(listed.stdout)
        expected = {s.name for s in data.SERVERS if s.ministry == "moi"}
        assert {s["name"] for s in servers} == expected
        assert {s["state"] for s in servers} == {"RUNNING"}
        assert _processes_mentioning(str(workdir))  # the children are up

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _processes_mentioning(str(workdir)) == []
    assert "Stopping agents and control plane" in err.read_text()
