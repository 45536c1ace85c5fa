"""The game day at a glance, as HTML: per scenario the verdict, a failure's diagnosis, the headline
figures against the SLOs and the timeline chart.

Why it exists: those figures are what a team keeps the report for, and Allure opens on a generic
test list. The same fragment leads each test's Allure description and the report's first view
(gameday.report.html puts the overview above the Allure app), so both read alike. Rows are
summary rows (gameday.report.summary.summary_row), already scrubbed; every text is HTML-escaped.
A diagnosis comes before the evidence (figures, chart), so a failed scenario says first what to act on.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gameday.errors import ACT_ON, VERDICTS, Category
from gameday.report.summary import duration_text, slo_limits

#: (title, figure key): the figures a game day is judged by, in reading order (shown when measured)
HEADLINE: tuple[tuple[str, str], ...] = (
    ("detection", "detection_s"),
    ("DNS shift", "dns_shift_s"),
    ("client outage", "client_outage_s"),
    ("RPO (lost writes)", "rpo_lost_writes"),
    ("replication lag p50", "replication_lag_p50_s"),
    ("replication lag p99", "replication_lag_p99_s"),
    ("failback", "failback_s"),
)
ALWAYS_SHOWN = ("detection_s", "dns_shift_s")  # shown as "not measured" too: a failover that never shifted
SECTION_ID = "gameday-overview"


_STYLE = ("font-family:system-ui,-apple-system,Segoe UI,sans-serif;color:#1d1d1f;background:#fff;"
          "line-height:1.4;")
_CELL = "padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top;"
_VERDICT_COLOUR = {"pass": "#2e7d32", "fail": "#c62828"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def png_data_uri(data: bytes) -> str:
    """A PNG as a data: URI (the report is one file; nothing may be fetched)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def row_title(row: Mapping[str, Any]) -> str:
    region = row.get("failed_region")
    return f"{row.get('scenario')}" + (f" [{region}]" if region else "")


def _value_text(key: str, value: Any, time_scale: float) -> str:
    if value is None:
        return "not measured"
    if key.endswith("_s") and isinstance(value, (int, float)):
        return duration_text(value, time_scale)
    return str(value)


def figure_lines(row: Mapping[str, Any], time_scale: float) -> list[tuple[str, str, str]]:
    """(figure title, "measured / SLO" text, SLO status) for each headline figure the scenario measured.
    SLOs of *_s figures are AWS-equivalent seconds, as gameday.measure compares them."""
    metrics = row.get("metrics") or {}
    targets = ((row.get("evidence") or {}).get("slo") or {}).get("targets") or {}
    lines = []
    for title, key in HEADLINE:
        if key not in metrics:
            continue
        value = metrics[key]
        upper, lower = slo_limits(targets.get(key))
        if value is None and upper is None and lower is None and key not in ALWAYS_SHOWN:
            continue  # e.g. a load figure this game day had no phase for
        text = _value_text(key, value, time_scale)
        if upper is None and lower is None:
            lines.append((title, text, "no SLO"))
            continue
        unit = " s" if key.endswith("_s") else ""
        limits = [f"SLO {'≤ ' if lower is not None else ''}{upper:g}{unit}" if upper is not None else "",
                  f"SLO ≥ {lower:g}{unit}" if lower is not None else ""]
        text += " / " + ", ".join(part for part in limits if part)
        compared = None if value is None else (value / time_scale if key.endswith("_s") and time_scale else value)
        within = compared is not None and (upper is None or compared <= upper) and (lower is None or compared >= lower)
        lines.append((title, text, "within SLO" if within else "over SLO"))
    return lines


def diagnosis_html(row: Mapping[str, Any]) -> str:
    """The failure's category, message and what to act on ('' for a passed scenario)."""
    if row.get("verdict") == "pass":
        return ""
    try:
        category: Category | None = Category.parse(row.get("failure_category") or "")
    except ValueError:
        category = None
    title = VERDICTS[category].title if category is not None else "Uncategorised failure"
    act = ACT_ON.get(category, "read the error and the steps") if category is not None else "read the error"
    return (f"<div class='gameday-diagnosis' style='border-left:4px solid #c62828;background:#fdecea;"
            f"padding:6px 10px;margin:6px 0'><div><b>Diagnosis: {_e(title)}</b>"
            f"{f' ({_e(category.value)})' if category is not None else ''}</div>"
            f"<div>{_e(row.get('error') or '')}</div><div><b>Act on:</b> {_e(act)}</div></div>")


def scenario_html(row: Mapping[str, Any], time_scale: float, *, image_src: str | None = None,
                  link: str | None = None, heading: bool = True) -> str:
    """One scenario: heading with the verdict, the diagnosis, the figures-vs-SLO table, findings, the chart."""
    verdict = str(row.get("verdict") or "-")
    parts = []
    if heading:
        name = _e(row_title(row))
        name = f"<a href='{_e(link)}' style='color:#1d4ed8'>{name}</a>" if link else name
        parts.append(f"<h3 style='margin:0 0 4px;font-size:16px;font-weight:600'>{name} <span "
                     f"class='gameday-verdict' style='color:{_VERDICT_COLOUR.get(verdict, '#555')}'>"
                     f"{_e(verdict.upper())}</span></h3>")
    parts.append(diagnosis_html(row))
    lines = figure_lines(row, time_scale)
    if lines:
        body = "".join(f"<tr><th style='{_CELL}'>{_e(t)}</th><td class='gameday-figure' style='{_CELL}'>{_e(v)}"
                       f"</td><td style='{_CELL}'>{_e(s)}</td></tr>" for t, v, s in lines)
        parts.append(f"<table class='gameday-figures' style='border-collapse:collapse;margin:4px 0'>{body}</table>")
    findings = row.get("findings") or []
    if findings:
        parts.append("<ul class='gameday-findings' style='margin:4px 0;padding-left:18px;font-size:13px'>"
                     + "".join(f"<li>finding: {_e(f)}</li>" for f in findings) + "</ul>")
    text = f"<div style='flex:1 1 380px;min-width:300px'>{''.join(parts)}</div>"
    chart = (f"<img class='gameday-timeline' alt='timeline of {_e(row_title(row))}' src='{_e(image_src)}' "
             "style='flex:0 1 560px;max-width:100%;width:560px;height:auto'>") if image_src else ""
    return (f"<div class='gameday-scenario' style='{_STYLE}display:flex;flex-wrap:wrap;gap:12px;align-items:"
            f"flex-start;font-size:14px;padding:8px 0;border-top:1px solid #e3e3e3'>{text}{chart}</div>")


def chart_of(row: Mapping[str, Any], run_dir: str | Path) -> bytes | None:
    """The scenario's timeline chart (else its first chart) as PNG bytes, from the run folder."""
    charts = [str(c) for c in row.get("charts") or []]
    for path in sorted(charts, key=lambda c: not c.endswith("-timeline.png")):
        file = Path(run_dir) / path
        if file.is_file():
            return file.read_bytes()
    return None


def trends_html(run_dir: Path) -> str:
    """The trend charts across kept runs that the run wrote beside summary.md (`trends/`), inline."""
    charts = sorted((run_dir / "trends").glob("trend-*.png")) if (run_dir / "trends").is_dir() else []
    if not charts:
        return ""
    images = "".join(f"<img class='gameday-trend' alt='{_e(p.stem)}' src='{png_data_uri(p.read_bytes())}' "
                     f"style='max-width:420px;margin:4px'>" for p in charts)
    return (f"<div id='gameday-trends'><h3 style='margin:10px 0 4px;font-size:16px'>Trends across kept runs "
            f"(AWS seconds, SLO line)</h3>{images}</div>")


def overview_html(summary: Mapping[str, Any], run_dir: str | Path,
                  links: Mapping[str, str] | None = None) -> str:
    """The report's first view: every row of summary.json, charts inline; `links` maps a row title
    to the URL of its Allure test page."""
    scale = float(summary.get("time_scale") or 1.0)
    rows: Sequence[Mapping[str, Any]] = summary.get("rows") or []
    passed = sum(1 for r in rows if r.get("verdict") == "pass")
    note = (f" Time scale {scale:g}: measured seconds, AWS-equivalent seconds in brackets; SLOs in AWS seconds."
            if scale < 1.0 else "")
    blocks = []
    for row in rows:
        png = chart_of(row, run_dir)
        blocks.append(scenario_html(row, scale, image_src=png_data_uri(png) if png else None,
                                    link=(links or {}).get(row_title(row))))
    blocks.append(trends_html(Path(run_dir)))
    return (f"<section id='{SECTION_ID}' style='{_STYLE}padding:12px 24px;border-bottom:2px solid #ccc'>"
            f"<h2 style='margin:0 0 4px;font-size:20px;font-weight:600'>Game day {_e(summary.get('run_id', ''))}: {passed} of {len(rows)} "
            f"scenarios passed</h2><div style='color:#555;font-size:13px;margin-bottom:6px'>{_e(note.strip())} The Allure report (steps, "
            f"attachments, history) follows below.</div>{''.join(blocks)}</section>")
