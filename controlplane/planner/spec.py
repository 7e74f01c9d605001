"""A sizing result as a procurement specification, in Markdown, HTML or JSON.

The document is built once as a list of blocks (headings, paragraphs, tables) and rendered
to Markdown or to a self-contained HTML page (every value escaped), so both say the same
thing. JSON is the :class:`~controlplane.planner.sizing.SizingResult` itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.planner.sizing import ModelSizing, SizingResult


@dataclass(frozen=True)
class Heading:
    """A section title (level 1..3)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph, or a bullet list when ``bullets``."""

    lines: tuple[str, ...]
    bullets: bool = False


@dataclass(frozen=True)
class Table:
    """A table with a header row."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Heading | Paragraph | Table


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def _money(x: float, currency: str) -> str:
    return f"{x:,.0f} {currency}"


def _chosen(result: SizingResult) -> ModelSizing | None:
    return next((m for m in result.models if m.model == result.recommended), None)


def blocks(result: SizingResult) -> list[Block]:
    """The specification's content."""
    t = result.targets
    d = result.demand
    cur = result.currency
    title = "Procurement specification" + (f": {result.workload}" if result.workload else "")
    out: list[Block] = [
        Heading(1, title),
        Paragraph(
            (
                f"Sized on measured {t.basis.value} usage with growth x{t.growth}, "
                f"{_pct(t.headroom)} headroom per host and redundancy {t.redundancy.value}; "
                f"energy over {t.years} years at {t.energy_price_per_kwh} {cur}/kWh.",
            )
        ),
        Heading(2, "Recommendation"),
        Paragraph((result.recommendation,)),
        Heading(2, "Workload after growth"),
        Table(
            ("VMs", "vCPU", "RAM GiB", "disk GiB", "CPU load (threads)", "RAM load GiB"),
            (
                (
                    str(d.vms),
                    str(d.vcpus),
                    f"{d.ram_mib / 1024:,.1f}",
                    f"{d.disk_gib:,}",
                    f"{d.cpu_load_threads:,.1f}",
                    f"{d.ram_load_mib / 1024:,.1f}",
                ),
            ),
        ),
        Table(
            ("group", "count", "flavor", f"CPU {t.basis.value}", f"RAM {t.basis.value}", "where"),
            tuple(
                (
                    g.name,
                    str(g.count),
                    f"{g.flavor.vcpus} vCPU, {g.flavor.ram_mib} MiB, {g.flavor.disk_gib} GiB",
                    _pct(g.cpu.at(t.basis)),
                    _pct(g.ram.at(t.basis)),
                    ", ".join(g.datacentres) or "all",
                )
                for g in result.groups
            ),
        ),
        Heading(2, "Candidate host models"),
        Table(
            (
                "model",
                "per host",
                "hosts",
                "rack U",
                "price",
                "expected W",
                "kWh/year",
                "total cost",
                "meets targets",
            ),
            tuple(
                (
                    m.model,
                    f"{m.vcpus_per_host} threads, {m.ram_gib_per_host} GiB, "
                    f"{m.disk_gib_per_host} GiB disk",
                    str(m.hosts),
                    str(m.rack_units),
                    _money(m.price, cur),
                    f"{m.watts_expected:,.0f}",
                    f"{m.energy_kwh_per_year:,.0f}",
                    _money(m.total_cost, cur),
                    "yes" if m.feasible else "no: " + "; ".join(m.reasons),
                )
                for m in result.models
            ),
        ),
    ]
    chosen = _chosen(result)
    if chosen is not None:
        out += [
            Heading(2, f"Hosts to buy: {chosen.model}"),
            Table(
                (
                    "data centre",
                    "VMs",
                    "N",
                    "spare",
                    "hosts",
                    "lower bound N",
                    "vCPU alloc",
                    "RAM alloc",
                    "CPU load",
                    "CPU load, k down",
                    "W idle/expected/peak",
                    "price",
                ),
                tuple(
                    (
                        dc.datacentre,
                        str(dc.vms),
                        str(dc.hosts_needed),
                        str(dc.spare),
                        str(dc.hosts),
                        str(dc.lower_bound),
                        _pct(dc.allocation.vcpus),
                        _pct(dc.allocation.ram),
                        _pct(dc.load.vcpus),
                        _pct(dc.load_after_failures.vcpus),
                        f"{dc.watts_idle:,.0f} / {dc.watts_expected:,.0f} / {dc.watts_peak:,.0f}",
                        _money(dc.price, cur),
                    )
                    for dc in chosen.datacentres
                ),
            ),
            Heading(3, "Specification per server"),
            Paragraph(
                (
                    f"{chosen.hosts} servers ({chosen.model}), each at least "
                    f"{chosen.vcpus_per_host} hardware threads, {chosen.ram_gib_per_host} GiB "
                    f"RAM and {chosen.disk_gib_per_host} GiB of local disk",
                    f"{chosen.rack_units} rack units in all; expected draw "
                    f"{chosen.watts_expected / 1000:,.2f} kW "
                    f"({chosen.energy_kwh_per_year:,.0f} kWh per year)",
                    f"budget {_money(chosen.price, cur)} for the servers, "
                    f"{_money(chosen.total_cost, cur)} with {t.years} years of energy",
                ),
                bullets=True,
            ),
        ]
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: SizingResult) -> str:
    """The specification as GitHub-flavoured Markdown."""
    lines: list[str] = []
    for block in blocks(result):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [f"- {line}" for line in block.lines] if block.bullets else [*block.lines]
            lines.append("")
        else:
            lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _html_rows(cells: Sequence[str], tag: str) -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"


def render_html(result: SizingResult) -> str:
    """The specification as a self-contained HTML page."""
    body: list[str] = []
    for block in blocks(result):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            if block.bullets:
                items = "".join(f"<li>{html.escape(line)}</li>" for line in block.lines)
                body.append(f"<ul>{items}</ul>")
            else:
                body += [f"<p>{html.escape(line)}</p>" for line in block.lines]
        else:
            rows = "".join(_html_rows(row, "td") for row in block.rows)
            body.append(
                f"<table><thead>{_html_rows(block.header, 'th')}</thead>"
                f"<tbody>{rows}</tbody></table>"
            )
    title = html.escape(next(b.text for b in blocks(result) if isinstance(b, Heading)))
    style = (
        "body{font-family:sans-serif;max-width:72em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #999;padding:.25em .5em;text-align:left}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render_json(result: SizingResult) -> str:
    """The full result as JSON."""
    return json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
