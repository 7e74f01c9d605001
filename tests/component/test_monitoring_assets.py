"""The monitoring assets in ``deploy/``: Prometheus rules checked and unit-tested with
``promtool``, Grafana dashboards checked for structure, and every metric name that a rule or
a dashboard query uses checked against what govcloud really exports (a running control
plane with data, a running agent's registry, and the recording rules' own outputs).

promtool comes with Debian's ``prometheus`` package (``scripts/bootstrap.sh --e2e``); the
promtool tests skip with the reason when it is missing, unless ``GOVCLOUD_REQUIRE_E2E=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import AgentMetrics, TimedDriver
from controlplane.scheduler.record import DecisionRecord
from tests.api_helper import Api
from tests.component.agent_harness import simulated_host

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))

#: PromQL words that look like identifiers but are not metric names.
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan", "le"}
)  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (apt-get install --no-install-recommends prometheus)"
        if os.environ.get("GOVCLOUD_REQUIRE_E2E") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


# -- promtool ----------------------------------------------------------------------------


def test_rule_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["govcloud-alerts.yml", "govcloud-recording.yml"]
    assert RULE_TESTS


def test_promtool_check_rules() -> None:
    result = run(promtool(), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules() -> None:
    result = run(promtool(), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_example_config() -> None:
    result = run(promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL syntax error is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"record": "x:y", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    assert run(promtool(), "check", "rules", str(bad)).returncode != 0


# -- what govcloud exports ---------------------------------------------------------------


def exported_names(text: str) -> set[str]:
    """Every sample name a scrape can contain (suffixes included, samples or not)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


@pytest.fixture(scope="module")
def control_plane_names(
    sqlite_seeded_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> set[str]:
    """Metric names on a control plane's ``/metrics`` with data in every area."""
    directory = tmp_path_factory.mktemp("metrics-app")
    url = f"sqlite:///{directory / 'govcloud.db'}"
    shutil.copyfile(sqlite_seeded_template, directory / "govcloud.db")
    api = Api(url, migrate=False)
    try:
        agent = api.register_host("tpe-1-h01")
        api.patch("/v1/quotas/moi", json={"limits": {"instances": 10}}, expect=200)
        first = api.create_instance("web-0")
        api.clock.advance(timedelta(seconds=30))
        agent.converge()
        api.create_instance("web-1")
        agent.status(api.instances()[0]["id"], "error", message="boom")
        api.create_instance("huge", flavor="m1.large", datacentre="tpe-1")
        api.get(f"/v1/instances/{first['id']}x", expect=404)
        api.app.state.telemetry.scheduler.observe(
            DecisionRecord(outcome="pending", seconds=0.01, rejected_by={"capacity": 1})
        )
        api.place_pending()
        text = api.client.get("/metrics").text
    finally:
        api.close()
    return exported_names(text)


@pytest.fixture(scope="module")
def agent_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Metric names of an agent's registry over a simulated host."""
    from prometheus_client import generate_latest

    host = simulated_host(tmp_path_factory.mktemp("agent-host"))
    try:
        metrics = AgentMetrics()
        driver = TimedDriver(host.driver, metrics)
        metrics.watch_domains(driver)
        driver.list_domains()
        return exported_names(generate_latest(metrics.registry).decode())
    finally:
        host.driver.close()


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def metric_names_in(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (Grafana variables allowed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text
    )  # grouping label lists
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_name_extraction_is_not_vacuous() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, ministry) (max without (instance, pod) "
        '(rate(govcloud_x_bucket{ministry=~"$m"}[$__rate_interval])))) / on() group_left '
        "a:b:c > 0.5 and govcloud_y"
    )
    assert metric_names_in(expr) == {"govcloud_x_bucket", "a:b:c", "govcloud_y"}


def rule_exprs() -> Iterator[tuple[str, str]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield rule.get("record") or rule["alert"], rule["expr"]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
                assert inner, f"{path.name}: variable {variable['name']}: {query}"
                yield f"{path.name}: ${variable['name']}", inner.group(1)


def test_every_metric_used_by_rules_and_dashboards_is_exported(
    control_plane_names: set[str], agent_names: set[str]
) -> None:
    known = control_plane_names | agent_names | recorded_names()
    assert "govcloud_provisioning_latency_seconds_bucket" in control_plane_names
    assert "govcloud_agent_libvirt_call_duration_seconds_bucket" in agent_names
    used: dict[str, set[str]] = {}
    for where, expr in [*rule_exprs(), *dashboard_exprs()]:
        names = metric_names_in(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for name in names:
            used.setdefault(name, set()).add(where)
    unknown = {name: sorted(places) for name, places in used.items() if name not in known}
    assert not unknown, f"metrics used but not exported: {unknown}"
    # and the dashboards cover each area govcloud exports
    for needed in (
        "govcloud_datacentre_allocated_vcpus",
        "ministry:govcloud_availability:ratio",
        "ministry:govcloud_provisioning_latency_seconds:p95_1h",
        "outcome:govcloud_scheduler_decisions:rate5m",
        "govcloud_agent_domains",
    ):
        assert needed in used, needed


def test_every_exported_control_plane_metric_follows_the_naming_rule(
    control_plane_names: set[str], agent_names: set[str]
) -> None:
    ours = {n for n in control_plane_names | agent_names if n.startswith("govcloud_")}
    assert len(ours) > 30
    for name in ours:
        assert re.fullmatch(r"govcloud_[a-z]+(_[a-z0-9]+)+", name), name


# -- Grafana dashboards ------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    for key in ("uid", "title", "panels", "templating", "schemaVersion", "time"):
        assert key in dashboard, key
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert len(all_panels) >= 6
    for panel in all_panels:
        assert panel["title"], panel["id"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip()
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 2


def test_dashboard_queries_parse_in_promtool(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL: promtool checks them as recording rules."""
    tool = promtool()
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": re.sub(r"\$\{?\w+\}?", "x", expr.replace("$__rate_interval", "5m")),
        }
        for i, (_where, expr) in enumerate(dashboard_exprs())
    ]
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(tool, "check", "rules", str(file))
    assert result.returncode == 0, result.stdout + result.stderr
