"""The plain run summary: `<run-dir>/summary.json`, `<run-dir>/summary.md`, and the same table for a terminal.

Why it exists beside Allure: a scheduled game day must leave a readable result even where Node.js is absent,
and CI and scripts want one JSON file with a row per scenario (BRIEF.md "Run output"). Every row and the
deployment pass through `gameday.report.allure.scrub`, like Allure attachments do.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gameday.report.allure import scrub

#: the per-row figures of issue 4, hoisted from row["metrics"] when the row lacks them at the top level
LOAD_FIGURES = ("acked_writes", "rpo_lost_writes", "client_outage_s", "errors", "replication_lag_p50_s",
                "replication_lag_p99_s", "failback_s")
ROW_KEYS = ("scenario", "failed_region", "survivor", "detection_s", "dns_shift_s", "verdict", "failure_category",
            *LOAD_FIGURES, "evidence", "metrics", "charts")
#: (column title, row key, is a duration in measured seconds)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("scenario", "scenario", False),
    ("failed region", "failed_region", False),
    ("survivor", "survivor", False),
    ("detection", "detection_s", True),
    ("DNS shift", "dns_shift_s", True),
    ("verdict", "verdict", False),
    ("acked writes", "acked_writes", False),
    ("RPO lost", "rpo_lost_writes", False),
    ("client outage", "client_outage_s", True),
    ("errors", "errors", False),
    ("repl lag p50", "replication_lag_p50_s", True),
    ("repl lag p99", "replication_lag_p99_s", True),
    ("failback", "failback_s", True),
)
DURATION_KEYS = tuple(key for _, key, is_s in COLUMNS if is_s)


def normalise_row(row: Mapping[str, Any], time_scale: float = 1.0,
                  run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A row with every contract key present (None when unknown), scrubbed, issue-4 figures at the top level,
    chart paths relative to the run dir, and `aws_equivalent_s` when the run was time-scaled."""
    metrics = dict(row.get("metrics") or {})
    out: dict[str, Any] = {key: row.get(key) for key in ROW_KEYS}
    for key in (*LOAD_FIGURES, "detection_s", "dns_shift_s"):
        if out.get(key) is None and metrics.get(key) is not None:
            out[key] = metrics[key]
    for key, value in row.items():  # keep extra fields a scenario adds
        out.setdefault(key, value)
    out["evidence"] = out.get("evidence") or {}
    out["metrics"] = metrics
    out["charts"] = [_relative(p, run_dir) for p in (out.get("charts") or [])]
    if out.get("verdict") not in ("pass", "fail"):
        out["verdict"] = "fail" if out.get("failure_category") else (out.get("verdict") or "fail")
    if time_scale and time_scale < 1.0:
        out["aws_equivalent_s"] = {k: round(out[k] / time_scale, 3) for k in DURATION_KEYS
                                   if isinstance(out.get(k), (int, float))}
    return scrub(out)


def chart_file(run_dir: str | os.PathLike[str], scenario: str, kind: str) -> Path:
    """Where a scenario's chart goes: `<run_dir>/charts/<scenario slug>-<kind>.png` (list it in row["charts"])."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario).strip("-") or "scenario"
    return Path(run_dir) / "charts" / f"{slug}-{kind}.png"


def _relative(path: Any, run_dir: str | os.PathLike[str] | None) -> str:
    p = Path(path)
    if run_dir is not None and p.is_absolute():
        try:
            return p.relative_to(Path(run_dir).resolve()).as_posix()
        except ValueError:
            try:
                return p.relative_to(Path(run_dir)).as_posix()
            except ValueError:
                return p.as_posix()
    return p.as_posix()


def _fmt_value(value: Any, is_duration: bool, time_scale: float) -> str:
    if value is None:
        return "-"
    if is_duration and isinstance(value, (int, float)):
        text = f"{_seconds(value)} s"
        if time_scale and time_scale < 1.0:
            text += f" ({_seconds(value / time_scale)} s AWS)"
        return text
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return f"{len(value)}: " + ", ".join(str(v) for v in value[:5]) + (" ..." if len(value) > 5 else "")
    return str(value)


def _seconds(value: float) -> str:
    """Seconds with the precision that matters: 92, 4.3, 0.31, 0.004."""
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.2f}"
    return f"{value:.2g}" if value else "0"


def _verdict(row: Mapping[str, Any]) -> str:
    verdict = str(row.get("verdict") or "-")
    if verdict == "fail" and row.get("failure_category"):
        verdict += f" ({row['failure_category']})"
    return verdict


def table_cells(rows: Iterable[Mapping[str, Any]], time_scale: float = 1.0) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table (shared by markdown and terminal rendering)."""
    header = [title for title, _, _ in COLUMNS]
    body = []
    for row in rows:
        metrics = row.get("metrics") or {}
        row = {**{k: metrics[k] for k in LOAD_FIGURES if k in metrics}, **{k: v for k, v in row.items()
                                                                          if v is not None}}
        cells = []
        for _, key, is_s in COLUMNS:
            cells.append(_verdict(row) if key == "verdict" else _fmt_value(row.get(key), is_s, time_scale))
        body.append(cells)
    return header, body


def render_terminal(rows: Iterable[Mapping[str, Any]], time_scale: float = 1.0) -> str:
    """The summary table as aligned plain text for a terminal (then one line per finding)."""
    rows = list(rows)
    header, body = table_cells(rows, time_scale)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    rule = "  ".join("-" * w for w in widths)
    lines = [line, rule] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    if time_scale and time_scale < 1.0:
        lines.append(f"(time scale {time_scale:g}: AWS-equivalent seconds in brackets)")
    lines += [f"finding: {_row_name(r)}: {f}" for r in rows for f in (r.get("findings") or [])]
    return "\n".join(line.rstrip() for line in lines)


def _row_name(row: Mapping[str, Any]) -> str:
    region = row.get("failed_region")
    return f"{row.get('scenario')}" + (f" [{region}]" if region else "")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(run_id: str, rows: Sequence[Mapping[str, Any]], time_scale: float = 1.0,
                    deployment: Mapping[str, Any] | None = None) -> str:
    """summary.md: the table, any failures with their category, and each scenario's chart images."""
    header, body = table_cells(rows, time_scale)
    out = [f"# Game day {run_id}", ""]
    if deployment:
        regions = ", ".join(r.get("name", "?") for r in deployment.get("regions") or [] if isinstance(r, Mapping))
        out += [f"Target `{deployment.get('target', '?')}`, regions {regions or '?'}, routing "
                f"`{deployment.get('routing', '?')}`, time scale {time_scale:g}.", ""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    out += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
    if time_scale and time_scale < 1.0:
        out += ["", f"Measured seconds; AWS-equivalent seconds (measured / {time_scale:g}) in brackets."]
    failed = [r for r in rows if r.get("verdict") != "pass"]
    if failed:
        out += ["", "## Failures", ""]
        for r in failed:
            reason = (r.get("evidence") or {}).get("message") or r.get("message") or ""
            out.append(f"- **{_md_escape(str(r.get('scenario')))}**: {r.get('failure_category') or 'uncategorised'}"
                       + (f": {_md_escape(str(reason))}" if reason else ""))
    found = [(r, f) for r in rows for f in (r.get("findings") or [])]
    if found:
        out += ["", "## Findings", ""]
        out += [f"- **{_md_escape(_row_name(r))}**: {_md_escape(str(f))}" for r, f in found]
    charted = [r for r in rows if r.get("charts")]
    if charted:
        out += ["", "## Charts"]
        for r in charted:
            out += ["", f"### {r.get('scenario')}", ""]
            out += [f"![{Path(p).stem}]({p})" for p in r["charts"]]
    return "\n".join(out) + "\n"


def write_summary(run_dir: str | os.PathLike[str], run_id: str, started: str | float,
                  deployment: Mapping[str, Any], rows: Iterable[Mapping[str, Any]],
                  time_scale: float | None = None) -> tuple[Path, Path]:
    """Write `<run_dir>/summary.json` and `<run_dir>/summary.md`; returns both paths."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scale = float(time_scale if time_scale is not None else deployment.get("time_scale", 1.0) or 1.0)
    clean_rows = [normalise_row(r, scale, run_dir) for r in rows]
    doc = {"run_id": run_id, "started": started, "deployment": scrub(dict(deployment)), "time_scale": scale,
           "rows": clean_rows}
    json_path = run_dir / "summary.json"
    md_path = run_dir / "summary.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(run_id, clean_rows, scale, doc["deployment"]), encoding="utf-8")
    return json_path, md_path
