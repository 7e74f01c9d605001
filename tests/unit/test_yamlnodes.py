"""The shared YAML loader (``controlplane.domain.yamlnodes``): nested locations, duplicate
keys at any depth, unknown fields at their key's line, every problem at once; the SLA
targets file goes through it too (price tables: test_metering, planner files: test_sizing)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from controlplane.domain.fileproblems import FileProblem, InvalidFile
from controlplane.domain.yamlnodes import key_line, load_yaml_model, node_at
from controlplane.sla.targets import TargetsError, load_targets


class Disk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size_gib: int


class Server(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    disks: list[Disk] = []


class Farm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servers: list[Server]


class FarmError(InvalidFile):
    def __init__(self, filename: str, problems: Iterable[FileProblem]) -> None:
        super().__init__(filename, problems, title=f"farm {filename}", code="farm.invalid")


def errors(text: str, **options: str) -> tuple[InvalidFile, list[str]]:
    with pytest.raises(FarmError) as caught:
        load_yaml_model(
            textwrap.dedent(text), "farm.yaml", Farm, expected="a farm", error=FarmError, **options
        )
    return caught.value, [str(p) for p in caught.value.problems]


FARM = """\
servers:
  - name: web
    disks:
      - size_gib: 10
      - size_gib: lots
  - name: db
    colour: blue
    name: db2
"""


def test_problems_are_located_in_nested_documents_all_at_once() -> None:
    err, found = errors(FARM)
    assert err.code == "farm.invalid"
    assert err.message.startswith("farm farm.yaml is invalid:\nfarm.yaml:5:")
    assert found == [
        "farm.yaml:5: field 'servers.0.disks.1.size_gib': Input should be a valid integer, "
        "unable to parse string as an integer (got 'lots')",
        "farm.yaml:7: field 'servers.1.colour': unknown field",
        "farm.yaml:8: field 'servers.1.name': duplicate key (first on line 6)",
    ]
    assert err.details["problems"][0] == {
        "file": "farm.yaml",
        "line": 5,
        "field": "servers.0.disks.1.size_gib",
        "message": found[0].split(": ", 2)[2],
    }


def test_messages_for_unknown_fields_and_duplicates_can_be_worded() -> None:
    _, found = errors(FARM, unknown_field="not a server field", duplicate_note="first given on")
    assert "farm.yaml:7: field 'servers.1.colour': not a server field" in found
    assert "farm.yaml:8: field 'servers.1.name': duplicate key (first given on 6)" in found


def test_top_level_problems() -> None:
    assert errors("")[1] == ["farm.yaml:1: expected a farm; got an empty file"]
    assert errors("- 1\n")[1] == ["farm.yaml:1: expected a farm; got list [1]"]
    assert errors("servers: [\n")[1][0].startswith("farm.yaml:2: not valid YAML")
    assert errors("{}\n")[1] == ["farm.yaml:1: field 'servers': Field required"]


def test_node_at_stops_at_the_deepest_node_on_the_way() -> None:
    root = yaml.compose(FARM, Loader=yaml.SafeLoader)
    assert root is not None
    assert node_at(root, ("servers", 0, "disks", 1)).start_mark.line + 1 == 5
    assert node_at(root, ("servers", 9, "name")).start_mark.line + 1 == 2  # no server 9
    assert node_at(root, ("servers", 1, "name")).value == "db2"  # YAML keeps the last one
    assert key_line(node_at(root, ("servers", 1)), "colour") == 7
    assert key_line(node_at(root, ("servers",)), "colour") is None  # a list, not a mapping


def test_file_problem_text() -> None:
    assert str(FileProblem("f.yaml", 3, "a.b", "bad")) == "f.yaml:3: field 'a.b': bad"
    assert str(FileProblem("f.yaml", 1, "", "empty")) == "f.yaml:1: empty"


def test_invalid_file_lists_at_most_shown_problems() -> None:
    problems = [FileProblem("f", line, "x", "bad") for line in range(5, 0, -1)]
    err = InvalidFile("f", problems, title="f", shown=2)
    assert err.message == "f is invalid:\nf:1: field 'x': bad\nf:2: field 'x': bad\n... and 3 more"
    assert [p["line"] for p in err.details["problems"]] == [1, 2, 3, 4, 5]


def test_sla_targets_use_the_same_loader() -> None:
    text = textwrap.dedent(
        """\
        default_class: gold
        classes:
          silver: {availability_pct: 99.5, provisioning_p95_minutes: 30}
          silver: {availability_pct: 99.9, provisioning_p95_minutes: 30}
        ministries: {moe: silver}
        """
    )
    with pytest.raises(TargetsError) as caught:
        load_targets(text, "targets.yaml")
    err = caught.value
    assert err.code == "sla.targets_invalid"
    assert [str(p) for p in err.problems] == [
        # a document-level rule names the rule, not the whole document as the value
        "targets.yaml:1: Value error, default_class 'gold' is not a class (silver)",
        "targets.yaml:4: field 'classes.silver': duplicate key (first on line 3)",
    ]
    assert err.message.startswith("SLA targets file targets.yaml is invalid:\n")
