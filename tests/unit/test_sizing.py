"""Sizing engine: crafted measurements with known answers (N, N+1, N+2, headroom,
allocation ratios, power, price, growth, data centres), rejections with reasons, and the
procurement specification renderers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.domain.errors import InvalidRequest
from controlplane.domain.host import AllocationRatios
from controlplane.planner.hostmodel import BUILTIN, HostModel, HostModelCatalog, load_host_models
from controlplane.planner.problems import PlanInputError
from controlplane.planner.sizing import (
    FlavorSize,
    MeasuredGroup,
    Measurements,
    Redundancy,
    SizingTargets,
    Utilisation,
    load_measurements,
    size,
)
from controlplane.planner.spec import render_html, render_json, render_markdown
from controlplane.planner.target import TargetDataCentre

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

#: 16 threads, 64 GiB (65024 MiB usable after the 512 MiB reserve), 100-300 W.
SMALL = HostModel(
    name="small",
    cores=8,
    ram_gib=64,
    disk_gib=2000,
    idle_watts=100,
    peak_watts=300,
    price=100_000,
)


def web(count: int = 10, cpu_p95: float = 0.5, **extra: object) -> MeasuredGroup:
    """VMs of 4 vCPU / 8 GiB / 40 GiB using half their CPU and RAM at p95."""
    return MeasuredGroup.model_validate(
        {
            "name": "web",
            "count": count,
            "flavor": FlavorSize(vcpus=4, ram_mib=8192, disk_gib=40),
            "cpu": Utilisation(peak=max(cpu_p95, 0.7), p95=cpu_p95, mean=min(cpu_p95, 0.2)),
            "ram": Utilisation(peak=0.5, p95=0.5, mean=0.5),
            **extra,
        }
    )


def catalog(*models: HostModel) -> HostModelCatalog:
    return HostModelCatalog(models=list(models or [SMALL]))


@pytest.mark.parametrize(
    ("redundancy", "hosts"),
    [(Redundancy.NONE, 2), (Redundancy.N_PLUS_1, 3), (Redundancy.N_PLUS_2, 4)],
)
def test_ten_web_vms_need_two_hosts_plus_the_spares(redundancy: Redundancy, hosts: int) -> None:
    # Per host: CPU load 4 x 0.5 = 2 threads per VM, 16 x 0.8 = 12.8 allowed -> 6 VMs
    # (RAM allocation would allow 7: 7 x 8192 <= 65024). 10 VMs -> N = 2.
    result = size(Measurements(groups=[web()]), catalog(), SizingTargets(redundancy=redundancy))
    (model,) = result.models
    (dc,) = model.datacentres
    assert (dc.vms, dc.hosts_needed, dc.spare, dc.hosts) == (10, 2, redundancy.spare, hosts)
    assert dc.lower_bound == 2  # ceil(20 threads / 12.8)
    assert model.price == hosts * 100_000
    # 20 threads busy over hosts x 16: each host draws 100 + 200 x u.
    u = 20 / (hosts * 16)
    assert dc.load.vcpus == pytest.approx(u, abs=1e-4)
    assert dc.watts_expected == pytest.approx(hosts * (100 + 200 * u), abs=0.1)
    assert dc.load_after_failures.vcpus == pytest.approx(20 / 32, abs=1e-4)
    assert (dc.watts_idle, dc.watts_peak) == (hosts * 100, hosts * 300)
    assert result.recommended == "small"


def test_no_headroom_lets_the_allocation_bind() -> None:
    # Without headroom the CPU load allows 8 VMs per host but RAM allocation only 7.
    result = size(Measurements(groups=[web(14)]), catalog(), SizingTargets(headroom=0))
    assert result.models[0].datacentres[0].hosts == 2
    result = size(Measurements(groups=[web(15)]), catalog(), SizingTargets(headroom=0))
    assert result.models[0].datacentres[0].hosts == 3


def test_the_cpu_allocation_ratio_is_applied_like_a_real_host() -> None:
    # Ratio 1.0: 16 allocatable vCPU -> 4 VMs of 4 vCPU per host, whatever the load.
    strict = SMALL.model_copy(update={"name": "strict", "ratios": AllocationRatios(cpu=1.0)})
    result = size(Measurements(groups=[web(10, cpu_p95=0.1)]), catalog(strict))
    assert result.models[0].datacentres[0].hosts == 3


def test_growth_rounds_the_vm_count_up_and_the_basis_selects_the_statistic() -> None:
    result = size(Measurements(groups=[web(10)]), catalog(), SizingTargets(growth=1.25))
    assert result.demand.vms == 13  # ceil(12.5)
    peak = size(Measurements(groups=[web(10, cpu_p95=0.5)]), catalog(), SizingTargets(basis="peak"))
    assert peak.demand.cpu_load_threads == pytest.approx(10 * 4 * 0.7)


def test_vms_are_spread_over_the_data_centres_and_each_gets_its_spare() -> None:
    dcs = [TargetDataCentre(code="tpe-1"), TargetDataCentre(code="khh-1")]
    groups = [web(7), web(3, datacentres=["khh-1"]).model_copy(update={"name": "gis"})]
    result = size(Measurements(groups=groups), catalog(), SizingTargets(redundancy="n+1"), dcs)
    by_dc = {d.datacentre: d for d in result.models[0].datacentres}
    assert (by_dc["tpe-1"].vms, by_dc["khh-1"].vms) == (4, 6)  # 7 -> 4 + 3, plus 3 in khh
    assert (by_dc["tpe-1"].hosts, by_dc["khh-1"].hosts) == (2, 2)
    assert result.models[0].hosts == 4


def test_a_group_naming_an_unknown_data_centre_is_refused_with_the_field() -> None:
    group = web(datacentres=["nowhere"])
    with pytest.raises(InvalidRequest) as caught:
        size(Measurements(groups=[group]), catalog(), datacentres=[TargetDataCentre(code="tpe-1")])
    assert caught.value.details == {"field": "groups.0.datacentres.0", "value": "nowhere"}


def test_models_that_cannot_meet_the_targets_say_why_and_the_cheapest_other_wins() -> None:
    tiny = SMALL.model_copy(update={"name": "tiny", "cores": 1, "price": 1})
    big = SMALL.model_copy(update={"name": "big", "cores": 32, "ram_gib": 256, "price": 390_000})
    result = size(Measurements(groups=[web()]), catalog(tiny, SMALL, big))
    by_name = {m.model: m for m in result.models}
    assert not by_name["tiny"].feasible
    assert "does not fit one tiny host" in by_name["tiny"].reasons[0]
    assert "allocated vCPU 4 > 8" not in by_name["tiny"].reasons[0]
    assert "CPU load (milli-threads) 2000 > 1600" in by_name["tiny"].reasons[0]
    # small: 2 hosts = 200,000; big: 1 host = 390,000.
    assert (by_name["small"].price, by_name["big"].price) == (200_000, 390_000)
    assert result.recommended == "small"
    assert "next: big" in result.recommendation


def test_space_and_power_limits_reject_a_model() -> None:
    dc = TargetDataCentre(code="tpe-1", space_u=1, power_kw=10)
    result = size(Measurements(groups=[web()]), catalog(), datacentres=[dc])
    assert result.recommended is None
    assert "needs 2 hosts of 1 U but has space for 1" in result.models[0].reasons[0]
    assert "no host model meets the targets" in result.recommendation


def test_energy_cost_over_the_term_can_change_the_recommendation() -> None:
    hungry = SMALL.model_copy(update={"name": "hungry", "price": 99_000, "idle_watts": 2000,
                                      "peak_watts": 2000})  # fmt: skip
    cheap = size(Measurements(groups=[web()]), catalog(SMALL, hungry))
    assert cheap.recommended == "hungry"
    costly = size(
        Measurements(groups=[web()]),
        catalog(SMALL, hungry),
        SizingTargets(energy_price_per_kwh=4.0, years=3),
    )
    assert costly.recommended == "small"
    hungry_sized = next(m for m in costly.models if m.model == "hungry")
    assert hungry_sized.energy_kwh_per_year == pytest.approx(2 * 2000 * 8760 / 1000)


def test_specification_renders_as_markdown_html_and_json() -> None:
    result = size(
        Measurements(workload="food <poc>", groups=[web()]),
        catalog(),
        SizingTargets(redundancy="n+1"),
    )
    markdown = render_markdown(result)
    assert markdown.startswith("# Procurement specification: food <poc>\n")
    assert "| default | 10 | 2 | 1 | 3 | 2 |" in markdown
    page = render_html(result)
    assert "food &lt;poc&gt;" in page
    assert "<poc>" not in page
    assert page.count("<table>") == markdown.count("\n|---")
    assert json.loads(render_json(result))["recommended"] == "small"


def test_measurement_files_are_validated_with_file_line_and_field() -> None:
    text = (
        "groups:\n"
        "  - name: web\n"
        "    count: 0\n"
        "    flavor: {vcpus: 2, ram_mib: 4096}\n"
        "    cpu: {peak: 0.2, p95: 0.5, mean: 0.1}\n"
        "    ram: {peak: 1, p95: 1, mean: 1}\n"
        "    colour: blue\n"
    )
    with pytest.raises(PlanInputError) as caught:
        load_measurements(text, "m.yaml")
    lines = [str(p) for p in caught.value.problems]
    assert any(line.startswith("m.yaml:3: field 'groups.0.count':") for line in lines), lines
    assert any("m.yaml:5: field 'groups.0.cpu':" in line and "mean <= p95 <= peak" in line
               for line in lines)  # fmt: skip
    assert "m.yaml:7: field 'groups.0.colour': unknown field" in lines


def test_the_example_files_parse_and_the_builtin_models_match_the_example() -> None:
    text = (EXAMPLES / "host-models.yaml").read_text()
    assert load_host_models(text, "host-models.yaml") == BUILTIN
    found = load_measurements((EXAMPLES / "measurements.yaml").read_text(), "measurements.yaml")
    assert sum(g.count for g in found.groups) == 33  # the food-cloud PoC's 33 VMs
    result = size(found, BUILTIN, SizingTargets(growth=1.3, redundancy="n+1"))
    assert result.recommended is not None


def test_host_model_files_report_bad_values_and_duplicates() -> None:
    bad = (
        "models:\n  - {name: a, cores: 8, ram_gib: 64, idle_watts: 300, peak_watts: 1, price: 1}\n"
    )
    with pytest.raises(PlanInputError) as caught:
        load_host_models(bad, "h.yaml")
    text_of = caught.value.message
    assert "h.yaml:2: field 'models.0':" in text_of
    assert "peak_watts (1.0) is below" in text_of
    twice = (
        "models:\n"
        + "  - {name: a, cores: 8, ram_gib: 64, idle_watts: 1, peak_watts: 2, price: 1}\n" * 2
    )
    with pytest.raises(PlanInputError, match="given twice: a"):
        load_host_models(twice, "h.yaml")
