"""Names that must be unique in an input file (data centres, host models, measured and
scenario groups) share one rule, :func:`controlplane.domain.names.require_unique`, and
its message reaches the person with the file name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controlplane.domain.names import require_unique
from controlplane.planner.hostmodel import load_host_models
from controlplane.planner.problems import PlanInputError
from controlplane.planner.target import load_targets


def test_require_unique_names_every_repeated_name_once_sorted() -> None:
    require_unique(["a", "b"], "codes")  # no error
    require_unique([], "codes")
    with pytest.raises(ValueError, match=r"^codes must be unique; given twice: a, c$"):
        require_unique(["c", "a", "b", "a", "c", "c"], "codes")


@pytest.mark.parametrize(
    ("load", "text", "says"),
    [
        (
            load_targets,
            "datacentres:\n  - {code: tpe}\n  - {code: khh}\n  - {code: tpe}\n",
            "data centre codes must be unique; given twice: tpe",
        ),
        (
            load_host_models,
            "models:\n" + "  - {name: r1, cores: 8, ram_gib: 64, disk_gib: 100, idle_watts: 1,"
            " peak_watts: 2, price: 1}\n" * 2,
            "model names must be unique; given twice: r1",
        ),
    ],
)
def test_input_files_refuse_repeated_names(
    load: Callable[[str, str], object], text: str, says: str
) -> None:
    with pytest.raises(PlanInputError) as caught:
        load(text, "in.yaml")
    (problem,) = caught.value.problems
    assert problem.file == "in.yaml"
    assert says in problem.message
    assert "(got" not in problem.message  # a document-level rule: the file is not echoed
