"""Trends across kept runs, from summary.json files shaped as `gameday run` writes them."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib import image

from gameday.report.trends import load_history, render_trend_table, trend_charts, trend_rows, trend_series


def keep_run(report_dir: Path, run_id: str, started: str, detection_s: float, *, scale: float = 0.01,
             slo: dict | None = None, extra: dict | None = None) -> None:
    row = {"scenario": "region_failover", "failed_region": "eu-west-1", "detection_s": detection_s * scale,
           "dns_shift_s": None, "rpo_lost_writes": 0, "aws_equivalent_s": {"detection_s": detection_s},
           **(extra or {})}
    summary = {"run_id": run_id, "started": started, "time_scale": scale,
               "deployment": {"time_scale": scale, "slo": slo or {}}, "rows": [row]}
    (report_dir / run_id).mkdir(parents=True)
    (report_dir / run_id / "summary.json").write_text(json.dumps(summary))


def test_three_kept_runs_give_three_points_per_measured_figure(tmp_path: Path) -> None:
    keep_run(tmp_path, "run-b", "2026-11-17T03:00:00Z", 31.0)
    keep_run(tmp_path, "run-a", "2026-11-10T03:00:00Z", 30.0)            # older, listed first after sorting
    keep_run(tmp_path, "run-c", "2026-11-24T03:00:00Z", 44.0, slo={"detection_s": 40})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    history = load_history(tmp_path)
    assert [run.run_id for run in history] == ["run-a", "run-b", "run-c"]
    series = {s.figure: s for s in trend_series(history)}
    assert set(series) == {"detection_s", "rpo_lost_writes"}             # dns_shift_s was never measured
    detection = series["detection_s"]
    assert [p.value for p in detection.points] == [30.0, 31.0, 44.0] and detection.slo == 40
    (row,) = [r for r in trend_rows(series.values()) if r["figure"] == "detection_s"]
    assert (row["runs"], row["first"], row["latest"], row["change"]) == (3, 30.0, 44.0, 14.0)
    table = render_trend_table(trend_rows(series.values()))
    assert "detection" in table and "+14.0" in table and "40.0" in table
    charts = trend_charts(series.values(), tmp_path / "charts")
    assert set(charts) == {"detection_s", "rpo_lost_writes"}
    height, width, _ = image.imread(charts["detection_s"]).shape
    assert width > 300 and height > 100


def test_figures_without_an_aws_equivalent_are_divided_by_the_time_scale(tmp_path: Path) -> None:
    keep_run(tmp_path, "run-a", "2026-11-10T03:00:00Z", 30.0, scale=0.5, extra={"failback_s": 10.0})
    (series,) = [s for s in trend_series(load_history(tmp_path)) if s.figure == "failback_s"]
    assert series.points[0].value == 20.0


def test_no_history_says_so(tmp_path: Path) -> None:
    assert load_history(tmp_path / "missing") == []
    assert render_trend_table([]) == "no kept run has a measured figure yet"
