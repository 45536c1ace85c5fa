"""Turns one scenario run into its record: Allure labels, phases, attachments (charts,
observations, DNS answers, evidence, metrics, fault journal) and the summary row.
Runs in a `finally`, so a failed or interrupted scenario is recorded too."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from gameday.report import charts
from gameday.report import allure as reporting
from gameday.gamedays.session import GamedaySession

EPIC = "Multi-region failover"


@contextlib.contextmanager
def reported_scenario(session: GamedaySession, run: Any, *, feature: str, story: str,
                      severity: str = "critical") -> Iterator[Any]:
    record = reporting.RunRecord(scenario=run.scenario)
    with reporting.recording(record):
        reporting.label_scenario(EPIC, feature, story, severity=severity, failed_region=run.failed_region,
                                 title=f"{run.scenario}: {run.failed_region} fails")
        try:
            yield run
        finally:
            _finish(session, run, record)


def _finish(session: GamedaySession, run: Any, record: reporting.RunRecord) -> None:
    scale = session.deployment.time_scale
    chart_paths = []
    evidence = run.evidence
    charts_dir = session.run_dir / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{run.scenario}-{run.failed_region}"
    try:
        if evidence.get("health_observations"):
            path = charts_dir / f"{stem}-health.png"
            observed = evidence["health_observations"] + evidence.get("health_observations_recovery", [])
            png = charts.health_chart(observed, run.marks, path, time_scale=scale,
                                      title=f"Route 53 health: {run.failed_region}")
            reporting.attach_png("health observations chart", png)
            chart_paths.append(path)
        traffic = getattr(run, "traffic_events", None)
        if traffic:
            path = charts_dir / f"{stem}-timeline.png"
            png = charts.timeline_chart(traffic, run.marks, path, time_scale=scale,
                                        title=f"Traffic: {run.failed_region} fails")
            reporting.attach_png("timeline", png)
            chart_paths.append(path)
    except Exception as exc:  # a chart must never hide the verdict
        evidence["chart_error"] = f"{type(exc).__name__}: {exc}"
    for name in ("health_observations", "dns_answers", "item_by_region", "write", "read_back", "fault_journal"):
        if name in evidence:
            reporting.attach_json(name.replace("_", " "), evidence[name])
    findings = getattr(run, "findings", None)
    if findings:  # what the game day found that is not a failure (e.g. a blind spot)
        reporting.attach_json("findings", findings)
    reporting.attach_json("evidence", evidence)
    reporting.attach_metrics("metrics", {**run.figures, "survivor": run.survivor, "time_scale": scale})
    if run.failure_category:
        reporting.set_failure_category(run.failure_category)
    row = run.row()
    row["phases"] = record.phases
    row["charts"] = [str(p) for p in chart_paths]
    session.add_row(row)
