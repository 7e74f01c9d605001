"""``govcloud plan`` through Typer's CliRunner: generate an inventory, plan its
consolidation, size a measured workload, and every input error with file, line and exit
code. No control plane is needed: planning runs locally."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner, Result

from controlplane.cli.context import CliEnv
from controlplane.cli.errors import ExitCode
from controlplane.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TARGETS = str(EXAMPLES / "targets-dcs.yaml")
MEASUREMENTS = str(EXAMPLES / "measurements.yaml")


def run(*args: str, code: int = ExitCode.OK) -> Result:
    result = CliRunner().invoke(app, list(args), obj=CliEnv(environ={}))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def test_generate_then_consolidate(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms.csv"
    done = run("plan", "generate-inventory", "--rooms", "12", "--workloads", "300",
               "--seed", "4", "-o", str(rooms))  # fmt: skip
    assert "Wrote 300 workloads in 12 rooms" in done.stderr
    again = run("plan", "generate-inventory", "--rooms", "12", "--workloads", "300", "--seed", "4")
    assert again.stdout == rooms.read_text()

    args = ["plan", "consolidate", "--inventory", str(rooms), "--targets", TARGETS,
            "--host-model", "r2-96c-1t", "--waves", "3"]  # fmt: skip
    plan = json.loads(run(*args, "-o", "json").stdout)
    assert plan["rooms"] == 12
    assert plan["workloads"] == 300
    assert plan["hosts"] >= plan["lower_bound"] > 0
    assert len(plan["waves"]) == 3
    assert len(plan["datacentres"]) == 15
    assert plan["problems"] == []

    shown = run(*args).stdout
    assert "Migration waves" in shown
    assert f"Hosts: {plan['hosts']} (lower bound {plan['lower_bound']}" in shown
    assert "moe-south" in shown


def test_consolidation_that_leaves_rooms_out_exits_1_with_warnings(tmp_path: Path) -> None:
    targets = tmp_path / "dcs.yaml"
    targets.write_text("datacentres:\n  - {code: tiny, space_u: 1}\n")
    result = run("plan", "consolidate", "--inventory", str(EXAMPLES / "rooms-sample.csv"),
                 "--targets", str(targets), "--host-model", "r1-64c-512g", "-o", "yaml",
                 code=ExitCode.API_ERROR)  # fmt: skip
    assert yaml.safe_load(result.stdout)["unplaced"]
    assert "Warning: room" in result.stderr
    assert "fits no data centre" in result.stderr


def test_size_prints_a_procurement_specification() -> None:
    base = ["plan", "size", "-m", MEASUREMENTS, "--growth", "1.3", "--redundancy", "n+1",
            "--targets", TARGETS, "--dc", "mohw-health", "--dc", "shared-taichung"]  # fmt: skip
    table = run(*base)
    assert "Recommended: r1-64c-512g" in table.stderr
    markdown = run(*base, "-o", "markdown").stdout
    assert markdown.startswith("# Procurement specification: food-traceability-poc")
    assert "## Hosts to buy: r1-64c-512g" in markdown
    assert "<table>" in run(*base, "-o", "html").stdout
    data = json.loads(run(*base, "-o", "json").stdout)
    assert data["recommended"] == "r1-64c-512g"
    chosen = next(m for m in data["models"] if m["model"] == data["recommended"])
    assert {d["datacentre"] for d in chosen["datacentres"]} == {"mohw-health", "shared-taichung"}
    assert all(d["spare"] == 1 for d in chosen["datacentres"])


def test_size_without_a_feasible_model_exits_1(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - {name: pico, cores: 1, ram_gib: 2, idle_watts: 5, peak_watts: 10, "
        "price: 100}\n"
    )
    result = run("plan", "size", "-m", MEASUREMENTS, "--host-models", str(models),
                 code=ExitCode.API_ERROR)  # fmt: skip
    assert "no host model meets the targets" in result.stderr
    assert "does not fit one pico host" in result.stdout


def test_input_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("groups:\n  - name: web\n    count: -1\n")
    result = run("plan", "size", "-m", str(bad), code=ExitCode.USAGE)
    assert f"{bad}:3: field 'groups.0.count'" in result.stderr
    assert "docs/examples/measurements.yaml is an example" in result.stderr

    missing = run("plan", "size", "-m", str(tmp_path / "nope.yaml"), code=ExitCode.USAGE)
    assert "cannot read the measurements file" in missing.stderr

    rooms = tmp_path / "rooms.csv"
    rooms.write_text("room,ministry,agency,name,vcpus,ram_gib,disk_gib\nr1,moi,nfa,a,x,1,1\n")
    result = run("plan", "consolidate", "--inventory", str(rooms), "--targets", TARGETS,
                 "--host-model", "r2-96c-1t", code=ExitCode.USAGE)  # fmt: skip
    assert f"{rooms}:2: field 'vcpus'" in result.stderr

    result = run("plan", "consolidate", "--inventory", str(rooms), "--targets", TARGETS,
                 "--host-model", "r9", code=ExitCode.USAGE)  # fmt: skip
    assert "no host model 'r9'" in result.stderr
    assert "govcloud plan host-models" in result.stderr

    result = run("plan", "size", "-m", MEASUREMENTS, "--headroom", "1.5", code=ExitCode.USAGE)
    assert "headroom" in result.stderr

    result = run("plan", "generate-inventory", "--rooms", "5", "--workloads", "2",
                 code=ExitCode.USAGE)  # fmt: skip
    assert "workloads must be between rooms (5)" in result.stderr


def test_host_models_lists_usable_capacity() -> None:
    shown = run("plan", "host-models").stdout
    assert "r2-96c-1t" in shown
    assert "768 vCPU" in shown  # 192 threads x 4.0
    listed = yaml.safe_load(run("plan", "host-models", "-o", "yaml").stdout)
    assert [m["name"] for m in listed["models"]] == ["r1-64c-512g", "r2-96c-1t", "r2-128c-2t"]
