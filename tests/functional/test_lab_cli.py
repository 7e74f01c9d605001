"""``govcloud lab`` through Typer's CliRunner against the real API (SQLite): a vendor trial
from request to the catalogue, with tables, -o json, and errors with Next: hints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controlplane.api.routes.lab import policy_of
from controlplane.reconciler.lab import LabLoop
from tests.api_helper import Api
from tests.functional.cli_helpers import CliHarness


@pytest.fixture
def cli(sqlite_seeded_url: str, api_factory: Callable[..., Api], tmp_path: Path) -> CliHarness:
    return CliHarness(api_factory(sqlite_seeded_url, migrate=False), tmp_path)


def test_vendor_trial_from_request_to_catalogue(cli: CliHarness, tmp_path: Path) -> None:
    api = cli.api
    api.create_org("moe", "gov")
    cli.run("lab", "vendor", "create", "cht", "--name", "Chunghwa Telecom")
    operator = api.create_user("lab-op", "lab-operator", "openlab")
    vendor = api.create_user("cht-alice", "member", "cht")
    moe_admin = api.create_user("moe-admin", "ministry-admin", "moe")

    assert "poc-small" in cli.run("lab", "templates").stdout
    created = cli.run(
        "lab",
        "create",
        "--vendor",
        "cht",
        "--for",
        "moe",
        "--name",
        "dictionary-poc",
        "--template",
        "poc-small",
        "--ttl",
        "14d",
        token=vendor,
    )
    assert "Requested trial cht-dictionary-poc (14d)" in created.stderr
    assert "lab approve cht-dictionary-poc" in created.stderr

    # the vendor cannot approve its own request: exit 4 with a Next: hint
    refused = cli.run("lab", "approve", "cht-dictionary-poc", code=4, token=vendor)
    assert "lab-operator" in refused.stderr
    assert "Next:" in refused.stderr
    cli.run("lab", "approve", "cht-dictionary-poc", token=operator)
    LabLoop(api.store, policy_of(api.settings), 60, clock=api.clock).run_once()

    listed = json.loads(cli.run("lab", "list", "-o", "json", token=moe_admin).stdout)
    assert [(t["id"], t["state"]) for t in listed] == [("cht-dictionary-poc", "active")]

    report = tmp_path / "poc-report.pdf"
    report.write_bytes(b"%PDF-1.4 dictionary PoC results\n" * 100)
    added = cli.run(
        "lab",
        "evidence",
        "add",
        "cht-dictionary-poc",
        "--file",
        str(report),
        "--result",
        "p95_latency_ms=180",
        "-o",
        "json",
        token=vendor,
    )
    evidence = json.loads(added.stdout)
    assert evidence["size_bytes"] == report.stat().st_size
    assert len(evidence["sha256"]) == 64
    assert evidence["results"] == {"p95_latency_ms": 180.0}

    bad = cli.run(
        "lab",
        "evidence",
        "add",
        "cht-dictionary-poc",
        "--file",
        str(report),
        "--result",
        "fast",
        code=2,
        token=vendor,
    )
    assert "NAME=NUMBER" in bad.stderr

    cli.run("lab", "sign-off", "cht-dictionary-poc", "--stage", "poc", token=moe_admin)
    missing = cli.run("lab", "advance", "cht-dictionary-poc", code=1, token=moe_admin)
    assert "lab.evidence_missing" in missing.stderr
    for sha, signer in (("a" * 64, moe_admin), ("b" * 64, operator)):  # the rest by API
        api.post(
            "/v1/lab/trials/cht-dictionary-poc/evidence",
            json={"name": "doc", "sha256": sha, "size_bytes": 10},
            token=vendor,
            expect=201,
        )
        api.post("/v1/lab/trials/cht-dictionary-poc/signoff", json={}, token=signer, expect=200)

    shown = cli.run("lab", "show", "cht-dictionary-poc", token=moe_admin).stdout
    assert "certified" in shown
    assert "signed-off" in shown
    catalog = cli.run("lab", "catalog", token=moe_admin).stdout
    assert "cht-dictionary-poc" in catalog
    assert "Chunghwa Telecom" in catalog
    entry = json.loads(cli.run("lab", "catalog", "cht-dictionary-poc", "-o", "json").stdout)
    assert len(entry["evidence"]) == 3
    entry_table = cli.run("lab", "catalog", "cht-dictionary-poc", token=moe_admin).stdout
    assert "Evidence" in entry_table
    assert "poc-report.pdf" in entry_table
    detail = yaml.safe_load(cli.run("lab", "show", "cht-dictionary-poc", "-o", "yaml").stdout)
    assert detail["trial"]["stage"] == "certified"
    assert [e["kind"] for e in detail["events"]][:2] == ["requested", "approved"]
    # nothing awaits a decision any more: the same usage error for approve and reject
    for verb in ("approve", "reject"):
        idle = cli.run("lab", verb, "cht-dictionary-poc", code=2, token=operator)
        assert f"nothing to {verb} on trial cht-dictionary-poc" in idle.stderr
        assert "lab show cht-dictionary-poc" in idle.stderr


def test_extension_and_errors(cli: CliHarness) -> None:
    api = cli.api
    api.create_org("moe", "gov")
    api.post("/v1/lab/vendors", json={"code": "cht", "name": "Chunghwa Telecom"}, expect=201)
    operator = api.create_user("lab-op", "lab-operator", "openlab")
    vendor = api.create_user("cht-alice", "member", "cht")
    cli.run(
        "lab",
        "create",
        "--vendor",
        "cht",
        "--for",
        "moe",
        "--name",
        "x",
        "--template",
        "poc-small",
        token=vendor,
    )

    too_long = cli.run(
        "lab",
        "create",
        "--vendor",
        "cht",
        "--for",
        "moe",
        "--name",
        "y",
        "--template",
        "poc-small",
        "--ttl",
        "60d",
        code=2,
        token=vendor,
    )
    assert "ttl" in too_long.stderr
    assert "30d" in too_long.stderr
    nothing = cli.run("lab", "reject", "nope", code=3, token=operator)
    assert "govcloud lab list" in nothing.stderr

    cli.run("lab", "approve", "cht-x", token=operator)
    LabLoop(api.store, policy_of(api.settings), 60, clock=api.clock).run_once()
    asked = cli.run("lab", "extend", "cht-x", "--by", "7d", token=vendor)
    assert "lab approve cht-x" in asked.stderr
    extended = cli.run("lab", "approve", "cht-x", token=operator)
    assert "Extended cht-x by 7d" in extended.stderr
    again = cli.run("lab", "approve", "cht-x", code=2, token=operator)
    assert "nothing to approve" in again.stderr
