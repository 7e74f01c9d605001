"""Agent settings: environment, YAML file, precedence and validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.config import AgentSettings

BASE = {
    "control_plane_url": "http://cp.test:8000/",
    "name": "host-1",
    "capacity": {"vcpus": 4, "ram_mib": 8192},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GOVCLOUD_AGENT_"):
            monkeypatch.delenv(key)


def test_defaults_describe_a_simulated_host(tmp_path: Path) -> None:
    s = AgentSettings(**BASE, state_dir=tmp_path)  # type: ignore[arg-type]
    assert s.control_plane_url == "http://cp.test:8000"
    assert s.simulated
    assert s.effective_domain_type == "test"
    assert (s.heartbeat_interval_s, s.poll_wait_s, s.resync_interval_s) == (10, 30, 30)
    assert s.credential_path == tmp_path / "credential.json"
    assert s.serial_dir == tmp_path / "serial"
    assert s.capacity.resources().disk_gib == 0


def test_real_hosts_default_to_kvm_and_test_type_needs_the_test_driver() -> None:
    s = AgentSettings(**BASE, libvirt_uri="qemu:///system")  # type: ignore[arg-type]
    assert (s.simulated, s.effective_domain_type) == (False, "kvm")
    with pytest.raises(ValidationError, match="test driver"):
        AgentSettings(**BASE, libvirt_uri="qemu:///system", domain_type="test")  # type: ignore[arg-type]


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVCLOUD_AGENT_CONTROL_PLANE_URL", "https://cp.example")
    monkeypatch.setenv("GOVCLOUD_AGENT_NAME", "env-host")
    monkeypatch.setenv("GOVCLOUD_AGENT_CAPACITY", '{"vcpus": 2, "ram_mib": 4096}')
    monkeypatch.setenv("GOVCLOUD_AGENT_CAPACITY__VCPUS", "16")
    monkeypatch.setenv("GOVCLOUD_AGENT_TRAITS", '["ssd", "CUSTOM_FIPS"]')
    monkeypatch.setenv("GOVCLOUD_AGENT_BOOTSTRAP_TOKEN", "secret-token-123456")
    s = AgentSettings.load()
    assert (s.name, s.capacity.vcpus, s.capacity.ram_mib) == ("env-host", 16, 4096)
    assert s.traits == ["ssd", "CUSTOM_FIPS"]
    assert s.bootstrap_token is not None
    assert s.bootstrap_token.get_secret_value() == "secret-token-123456"
    assert "secret-token" not in repr(s)


def test_yaml_file_with_environment_and_arguments_on_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "control_plane_url: http://yaml.test\n"
        "name: yaml-host\n"
        "capacity: {vcpus: 8, ram_mib: 16384, disk_gib: 500}\n"
        "libvirt_uri: qemu+tcp://127.0.0.1:16509/session\n"
        "domain_type: qemu\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "poll_wait_s: 5\n"
    )
    monkeypatch.setenv("GOVCLOUD_AGENT_CAPACITY__VCPUS", "12")
    monkeypatch.setenv("GOVCLOUD_AGENT_POLL_WAIT_S", "7")
    s = AgentSettings.load(config, name="arg-host")
    assert type(s) is AgentSettings
    assert s.name == "arg-host"  # argument beats everything
    assert s.poll_wait_s == 7  # environment beats the file
    assert (s.capacity.vcpus, s.capacity.ram_mib, s.capacity.disk_gib) == (12, 16384, 500)
    assert s.effective_domain_type == "qemu"
    assert s.state_dir == tmp_path / "state"


def test_yaml_typos_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "control_plane_url: http://cp\nname: h\ncapacity: {vcpus: 1, ram_mib: 1}\npoll_wiat_s: 1\n"
    )
    with pytest.raises(ValidationError, match="poll_wiat_s"):
        AgentSettings.load(config)
    with pytest.raises(FileNotFoundError):
        AgentSettings.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("control_plane_url", "cp.test"),
        ("name", "bad name"),
        ("traits", ["not a trait"]),
        ("capacity", {"vcpus": 0, "ram_mib": 1}),
        ("heartbeat_interval_s", 0),
    ],
)
def test_invalid_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        AgentSettings(**{**BASE, field: value})  # type: ignore[arg-type]
