"""The SLA report as one self-contained HTML page (inline CSS, no scripts, no CDN), for
mailing to a ministry or archiving with the month's records. Every value is escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from controlplane.schemas.sla import MinistrySla, SlaReport

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #c8ccd1;padding:.3em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.met{color:#116329}.breached{color:#a40e26;font-weight:bold}.nodata{color:#6e7781}
p.def{max-width:60em;color:#424a53;font-size:.9em}
"""


def _e(value: object) -> str:
    return escape("-" if value is None else str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[tuple[object, str]]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{_e(v)}</td>' for v, cls in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status(m: MinistrySla) -> tuple[str, str]:
    if m.breaches:
        return "BREACHED", "breached"
    return ("no data", "nodata") if m.attained is None else ("met", "met")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_html(report: SlaReport) -> str:
    """The whole page."""
    who = "every ministry" if report.scope == "all" else report.scope
    title = f"govcloud SLA report: {who}, {report.month}"
    ministries = _table(
        ["Ministry", "Class", "Target %", "Availability %", "Downtime min",
         "Error budget left min", "p95 launch min", "Failed launches", "Status"],
        (
            [(m.ministry, ""), (m.target.service_class, ""),
             (f"{m.target.availability_pct:g}", "n"), (_pct(m.availability.availability_pct), "n"),
             (f"{m.availability.downtime_minutes:.1f}", "n"),
             (f"{m.error_budget.remaining_minutes:.1f}", "n"),
             (m.provisioning.p95_minutes, "n"), (m.provisioning.failed, "n"), _status(m)]
            for m in report.ministries
        ),
    )  # fmt: skip
    breaches = "".join(
        f"<li>{_e(b.message)}"
        + (f" (incidents: {_e(', '.join(b.incidents))})" if b.incidents else "")
        + "</li>"
        for m in report.ministries
        for b in m.breaches
    )
    incidents = _table(
        ["Incident", "DC", "Start (UTC)", "End (UTC)", "Recovered in min", "Instances",
         "Ministries"],
        (
            [(i.id, ""), (i.datacentre, ""), (f"{i.start:%Y-%m-%d %H:%M}", ""),
             (f"{i.end:%Y-%m-%d %H:%M}" + (" (ongoing)" if i.ongoing else ""), ""),
             (f"{i.time_to_recover_minutes:.1f}", "n"), (len(i.instances), "n"),
             (", ".join(i.ministries), "")]
            for i in report.incidents
        ),
    )  # fmt: skip
    worst = _table(
        ["Ministry", "Instance", "Project", "Availability %", "Downtime min", "Outages"],
        (
            [(m.ministry, ""), (w.name, ""), (w.project, ""), (_pct(w.availability_pct), "n"),
             (f"{w.downtime_minutes:.1f}", "n"), (w.outages, "n")]
            for m in report.ministries
            for w in m.worst_instances
        ),
    )  # fmt: skip
    state = "final" if report.complete else f"as of {report.as_of:%Y-%m-%d %H:%M} UTC"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>Figures {_e(state)}. Overall availability "
        f"{_e(_pct(report.total.availability_pct))} %; {report.attained} of "
        f"{len(report.ministries)} ministries met their target, {report.breached} breached.</p>"
        f"<h2>Attainment per ministry</h2>{ministries}"
        f"<h2>Breaches</h2>{f'<ul>{breaches}</ul>' if breaches else '<p>None.</p>'}"
        f"<h2>Host-failure incidents</h2>"
        f"{incidents if report.incidents else '<p>None.</p>'}"
        f"<h2>Worst instances</h2>{worst}"
        f'<h2>Definition</h2><p class="def">{_e(report.definition)}</p>'
        "</body></html>\n"
    )
