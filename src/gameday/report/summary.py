"""The plain run summary: `<run-dir>/summary.json`, `<run-dir>/summary.md`, and the same table for a terminal.

Why it exists beside Allure: a scheduled game day must leave a readable result even where Node.js is absent,
and CI and scripts want one JSON file with a row per scenario. A row is made by `summary_row` from the run
record (gameday.records.RunRecord), and only there; every row and the deployment pass through
`gameday.report.allure.scrub`, like Allure attachments do.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import ACT_ON, VERDICTS, Category
from gameday.records import RunRecord
from gameday.report.allure import scrub

#: the figures of a game day under load that every row carries at its top level (None when not measured)
LOAD_FIGURES = ("acked_writes", "rpo_lost_writes", "client_outage_s", "errors", "replication_lag_p50_s",
                "replication_lag_p99_s", "failback_s")
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


def summary_row(record: RunRecord, time_scale: float = 1.0,
                run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The summary row of a run: every key present (None when unknown), the headline figures at the top
    level beside all of them under `metrics`, chart paths relative to the run dir, `aws_equivalent_s`
    when the run was time-scaled; scrubbed."""
    figures = dict(record.figures)
    row: dict[str, Any] = {
        "scenario": record.scenario,
        "failed_region": record.failed_region,
        "survivor": record.survivor,
        "detection_s": figures.get("detection_s"),
        "dns_shift_s": figures.get("dns_shift_s"),
        "verdict": record.verdict,
        "failure_category": record.category.value if record.category is not None else None,
        "error": record.message,
        **{key: figures.get(key) for key in LOAD_FIGURES},
        "marks": dict(record.marks),
        "metrics": figures,
        "evidence": dict(record.evidence),
        "findings": list(record.findings),
        "events": [e.to_dict() for e in record.events],
        "phases": record.phase_dicts(),
        "charts": [_relative(p, run_dir) for p in record.charts],
    }
    if time_scale and time_scale < 1.0:
        row["aws_equivalent_s"] = {k: round(row[k] / time_scale, 3) for k in DURATION_KEYS
                                   if isinstance(row.get(k), (int, float))}
    return scrub(row)


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
        return duration_text(value, time_scale)
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return f"{len(value)}: " + ", ".join(str(v) for v in value[:5]) + (" ..." if len(value) > 5 else "")
    return str(value)


def duration_text(value: float, time_scale: float = 1.0) -> str:
    """Measured seconds, with the AWS-equivalent seconds in brackets when time-scaled: "0.45 s (45 s AWS)"."""
    text = f"{_seconds(value)} s"
    if time_scale and time_scale < 1.0:
        text += f" ({_seconds(value / time_scale)} s AWS)"
    return text


def _seconds(value: float) -> str:
    """Seconds with the precision that matters: 92, 4.3, 0.31, 0.004."""
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.2f}"
    return f"{value:.2g}" if value else "0"


def slo_limits(target: Any) -> tuple[float | None, float | None]:
    """(max, min) of one SLO target as a row's evidence holds it (a number is a max)."""
    if isinstance(target, Mapping):
        return target.get("max"), target.get("min")
    return (float(target), None) if isinstance(target, (int, float)) and not isinstance(target, bool) else (None, None)


def _against_slo(key: str, value: Any, target: Any, time_scale: float) -> str:
    """' ≤ 60' within the SLO, ' > 60 !' over it ('' without one); *_s SLOs are AWS seconds."""
    upper, lower = slo_limits(target)
    if not isinstance(value, (int, float)) or (upper is None and lower is None):
        return ""
    compared = value / time_scale if key.endswith("_s") and time_scale else value
    if upper is not None and compared > upper:
        return f" > {upper:g} !"
    if lower is not None and compared < lower:
        return f" < {lower:g} !"
    return f" ≤ {upper:g}" if upper is not None else f" ≥ {lower:g}"


def diagnosis(row: Mapping[str, Any]) -> str | None:
    """One line for a failed row: what failed, why, and what to act on (None for a pass)."""
    if row.get("verdict") == "pass":
        return None
    try:
        category: Category | None = Category.parse(row.get("failure_category") or "")
    except ValueError:
        category = None
    title = VERDICTS[category].title if category is not None else "uncategorised failure"
    reason = str(row.get("error") or "").strip().splitlines()
    act = ACT_ON.get(category, "read the error and the steps") if category is not None else "read the error"
    return f"{_row_name(row)}: {title}" + (f": {reason[0][:240]}" if reason else "") + f" -> act on: {act}"


def _verdict(row: Mapping[str, Any]) -> str:
    verdict = str(row.get("verdict") or "-")
    if verdict == "fail" and row.get("failure_category"):
        verdict += f" ({row['failure_category']})"
    return verdict


def table_cells(rows: Iterable[Mapping[str, Any]], time_scale: float = 1.0) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table (shared by markdown and terminal rendering)."""
    header = [title for title, _, _ in COLUMNS]
    body = []
    for given in rows:
        metrics = given.get("metrics") or {}
        row = {**{k: metrics[k] for k in LOAD_FIGURES if k in metrics}, **{k: v for k, v in given.items()
                                                                          if v is not None}}
        targets = ((row.get("evidence") or {}).get("slo") or {}).get("targets") or {}
        cells = []
        for _, key, is_s in COLUMNS:
            if key == "verdict":
                cells.append(_verdict(row))
                continue
            value = row.get(key)
            cells.append(_fmt_value(value, is_s, time_scale) + _against_slo(key, value, targets.get(key), time_scale))
        body.append(cells)
    return header, body


def render_terminal(rows: Iterable[Mapping[str, Any]], time_scale: float = 1.0) -> str:
    """The summary table as aligned plain text for a terminal (then one line per finding)."""
    rows = list(rows)
    header, body = table_cells(rows, time_scale)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    lines = [line, rule] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    if time_scale and time_scale < 1.0:
        lines.append(f"(time scale {time_scale:g}: AWS-equivalent seconds in brackets; SLOs, after ≤ or >, in AWS seconds)")
    lines += [f"finding: {_row_name(r)}: {f}" for r in rows for f in (r.get("findings") or [])]
    lines += [f"diagnosis: {d}" for d in (diagnosis(r) for r in rows) if d]
    return "\n".join(line.rstrip() for line in lines)


def _row_name(row: Mapping[str, Any]) -> str:
    region = row.get("failed_region")
    return f"{row.get('scenario')}" + (f" [{region}]" if region else "")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(run_id: str, rows: Sequence[Mapping[str, Any]], time_scale: float = 1.0,
                    deployment: Mapping[str, Any] | None = None) -> str:
    """summary.md: the table, any failures with their category and reason, and each scenario's chart
    images (rows hold them relative to the run folder, where summary.md is written, so they
    resolve wherever the folder is opened or copied)."""
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
            reason = r.get("error") or (r.get("evidence") or {}).get("message") or r.get("message") or ""
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
                  deployment: Mapping[str, Any], rows: Iterable[Mapping[str, Any] | RunRecord], *,
                  time_scale: float | None = None) -> tuple[Path, Path]:
    """Write `<run_dir>/summary.json` and `<run_dir>/summary.md`; returns both paths. `rows` are run
    records, or rows as the workers wrote them (read back into records, then made rows again)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scale = float(time_scale if time_scale is not None else deployment.get("time_scale", 1.0) or 1.0)
    records = [r if isinstance(r, RunRecord) else RunRecord.from_row(r) for r in rows]
    clean_rows = [summary_row(r, scale, run_dir) for r in records]
    doc = {"run_id": run_id, "started": started, "deployment": scrub(dict(deployment)), "time_scale": scale,
           "rows": clean_rows}
    json_path = run_dir / "summary.json"
    md_path = run_dir / "summary.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(run_id, clean_rows, scale, doc["deployment"]), encoding="utf-8")
    return json_path, md_path


@dataclass(frozen=True)
class WrittenSummary:
    json_path: Path
    md_path: Path
    rows: list[dict[str, Any]]
    time_scale: float

    def table(self) -> str:
        return render_terminal(self.rows, self.time_scale)


def described_deployment(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The description the run used (copied into the run folder when its first game day started)."""
    path = Path(run_dir) / "deployment.yaml"
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def summarise_run(run_dir: str | os.PathLike[str]) -> WrittenSummary:
    """Merge the rows every worker of the run wrote into summary.json and summary.md."""
    from gameday.records import read_rows

    run_dir = Path(run_dir)
    rows = read_rows(run_dir)
    deployment = described_deployment(run_dir)
    scale = float(deployment.get("time_scale") or 1.0)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_dir.stat().st_mtime))
    json_path, md_path = write_summary(run_dir, run_dir.name, started, deployment, rows, time_scale=scale)
    return WrittenSummary(json_path, md_path, rows, scale)
