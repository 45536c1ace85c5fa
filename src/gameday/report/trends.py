"""Trends across kept runs: is failover getting slower over weeks of scheduled game days?

Reads every `<report-dir>/<run-id>/summary.json`, and follows each figure per scenario and failed
region over time, in AWS-equivalent seconds (so runs at different time scales compare), beside
its SLO. Gives the same points as a table (`gameday report --history`) and as one chart per
figure (the report and summary.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The figures followed across runs, with the label a chart or table shows.
TREND_FIGURES: dict[str, str] = {
    "detection_s": "detection",
    "dns_shift_s": "DNS shift",
    "client_outage_s": "client outage",
    "rpo_lost_writes": "RPO (lost writes)",
    "replication_lag_p99_s": "replication lag p99",
    "failback_s": "failback",
}


@dataclass(frozen=True)
class Point:
    run_id: str
    started: dt.datetime
    value: float


@dataclass
class Series:
    """One figure of one scenario in one failed region, over the kept runs (oldest first)."""

    scenario: str
    failed_region: str
    figure: str
    points: list[Point] = field(default_factory=list)
    slo: float | None = None          # the latest run's SLO for the figure

    @property
    def label(self) -> str:
        return f"{self.scenario} [{self.failed_region}]"


@dataclass(frozen=True)
class KeptRun:
    run_id: str
    started: dt.datetime
    time_scale: float
    slo: Mapping[str, Any]
    rows: list[dict[str, Any]]


def load_history(report_dir: str | os.PathLike[str]) -> list[KeptRun]:
    """Every run kept under `report_dir`, oldest first; unreadable summaries are skipped."""
    runs: list[KeptRun] = []
    for path in sorted(Path(report_dir).glob("*/summary.json")):
        try:
            summary = json.loads(path.read_text())
            started = dt.datetime.strptime(summary["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        deployment = summary.get("deployment") or {}
        runs.append(KeptRun(run_id=str(summary.get("run_id") or path.parent.name), started=started,
                            time_scale=float(summary.get("time_scale") or deployment.get("time_scale") or 1.0),
                            slo=deployment.get("slo") or {}, rows=list(summary.get("rows") or [])))
    return sorted(runs, key=lambda run: (run.started, run.run_id))


def aws_value(row: Mapping[str, Any], figure: str, time_scale: float) -> float | None:
    """The figure in AWS-equivalent units: seconds figures divided by the time scale."""
    equivalents = row.get("aws_equivalent_s") or {}
    if figure in equivalents and equivalents[figure] is not None:
        return float(equivalents[figure])
    value = row.get(figure)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) / time_scale if figure.endswith("_s") else float(value)


def _slo_limit(slo: Mapping[str, Any], figure: str) -> float | None:
    spec = slo.get(figure)
    if isinstance(spec, Mapping):
        spec = spec.get("max")
    return float(spec) if isinstance(spec, (int, float)) and not isinstance(spec, bool) else None


def trend_series(history: Iterable[KeptRun]) -> list[Series]:
    """Every (scenario, failed region, figure) with at least one measured point."""
    found: dict[tuple[str, str, str], Series] = {}
    for run in history:
        for row in run.rows:
            scenario, region = str(row.get("scenario")), str(row.get("failed_region") or "-")
            for figure in TREND_FIGURES:
                value = aws_value(row, figure, run.time_scale)
                if value is None:
                    continue
                series = found.setdefault((scenario, region, figure), Series(scenario, region, figure))
                series.points.append(Point(run.run_id, run.started, value))
                series.slo = _slo_limit(run.slo, figure)
    return [found[key] for key in sorted(found)]


def trend_rows(series: Iterable[Series]) -> list[dict[str, Any]]:
    """One row per series: how many runs, the first and latest value, the range, the SLO."""
    rows = []
    for s in series:
        values = [p.value for p in s.points]
        rows.append({"scenario": s.scenario, "failed_region": s.failed_region, "figure": s.figure,
                     "runs": len(values), "first": values[0], "latest": values[-1], "min": min(values),
                     "max": max(values), "change": values[-1] - values[0], "slo": s.slo,
                     "latest_run": s.points[-1].run_id})
    return rows


def render_trend_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of `trend_rows`, AWS-equivalent seconds."""
    if not rows:
        return "no kept run has a measured figure yet"

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    header = ["scenario", "failed region", "figure", "runs", "first", "latest", "min", "max", "change", "SLO"]
    body = [[r["scenario"], r["failed_region"], TREND_FIGURES[r["figure"]], str(r["runs"]), num(r["first"]),
             num(r["latest"]), num(r["min"]), num(r["max"]), f"{r['change']:+.1f}", num(r["slo"])] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n(AWS-equivalent seconds; RPO in writes)"


def trend_charts(series: Iterable[Series], out_dir: str | os.PathLike[str], *, dpi: int = 96) -> dict[str, Path]:
    """One PNG per figure, a line per scenario and region over the runs' start times, with the SLO as
    a dashed line. Returns figure name -> path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_figure: dict[str, list[Series]] = {}
    for s in series:
        by_figure.setdefault(s.figure, []).append(s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for figure, group in by_figure.items():
        fig = Figure(figsize=(8, 3.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for s in group:
            from matplotlib.dates import date2num

            when = [float(date2num(p.started)) for p in s.points]
            line, = ax.plot(when, [p.value for p in s.points], marker="o", label=s.label)
            ax.xaxis_date()
            if s.slo is not None:
                ax.axhline(s.slo, color=line.get_color(), linestyle="--", linewidth=1, label=f"SLO {s.slo:g}")
        unit = "writes" if figure == "rpo_lost_writes" else "AWS-equivalent s"
        ax.set_title(f"{TREND_FIGURES[figure]} across runs")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        path = out / f"trend-{figure}.png"
        fig.savefig(path, dpi=dpi)
        written[figure] = path
    return written
