"""Turns one scenario run into its report: Allure labels, phases, attachments (charts,
observations, DNS answers, evidence, metrics, fault journal), the description (verdict,
diagnosis, figures against the SLOs, chart: what a reader needs first) and the summary row.

The run record is the one the phases are timed into (reporting.recording), and the row is made
from it by report.summary.summary_row. It runs in a `finally`, so a failed or interrupted
scenario is recorded too; a scenario that ended with an exception nobody categorised gets the
category of that exception (a harness error, unless it carries one), never a pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gameday.errors import Category, category_of_exception
from gameday.gamedays.session import GamedaySession
from gameday.gamedays.steps import fail
from gameday.measure.slo import effective_slos, violations_of_measured
from gameday.records import RunRecord
from gameday.report import allure as reporting
from gameday.report import charts, overview, summary

EPIC = "Multi-region failover"


@contextlib.contextmanager
def reported_scenario(session: GamedaySession, run: RunRecord, *, feature: str, story: str,
                      severity: str = "critical") -> Iterator[RunRecord]:
    with reporting.recording(run):
        reporting.label_scenario(EPIC, feature, story, severity=severity, failed_region=run.failed_region,
                                 title=f"{run.scenario}: {run.failed_region} fails")
        try:
            yield run
            _judge_slos(session, run)
        except (Exception, KeyboardInterrupt) as exc:  # not pytest's skip/xfail outcomes
            if run.category is None:
                run.fail(category_of_exception(exc), f"{type(exc).__name__}: {exc}")
            raise
        finally:
            _finish(session, run)


def _judge_slos(session: GamedaySession, run: RunRecord) -> None:
    """Every game day is judged by the SLOs on the figures it measured (one that judged itself, as
    the failover under load does, has its verdict in evidence["slo"] already)."""
    if run.category is not None or "slo" in run.evidence:
        return
    slos = effective_slos(session.deployment, session.slo_overrides)
    violations = violations_of_measured(run.figures, slos, time_scale=session.deployment.time_scale)
    run.evidence["slo"] = {"targets": {k: v for k, v in slos.items() if k in run.figures},
                           "violations": [v.message for v in violations]}
    if violations:
        raise fail(run, Category.SLO_VIOLATION, "; ".join(v.message for v in violations))


def _finish(session: GamedaySession, run: RunRecord) -> None:
    scale = session.deployment.time_scale
    evidence = run.evidence
    if "slo" not in evidence:  # failed before it was judged: its figures are still read against the SLOs
        slos = effective_slos(session.deployment, session.slo_overrides)
        evidence["slo"] = {"targets": {k: v for k, v in slos.items() if k in run.figures}}
    charts_dir = session.run_dir / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{run.scenario}-{run.failed_region}"
    shown: bytes | None = None  # the chart the description leads with: the timeline, else the health chart
    try:
        if evidence.get("health_observations"):
            path = charts_dir / f"{stem}-health.png"
            observed = evidence["health_observations"] + evidence.get("health_observations_recovery", [])
            png = charts.health_chart(observed, run.marks, path, time_scale=scale,
                                      title=f"Route 53 health: {run.failed_region}")
            reporting.attach_png("health observations chart", png)
            run.charts.append(str(path))
            shown = png
        if run.traffic:
            path = charts_dir / f"{stem}-timeline.png"
            png = charts.timeline_chart(run.traffic, run.marks, path, time_scale=scale,
                                        title=f"Traffic: {run.failed_region} fails")
            reporting.attach_png("timeline", png)
            run.charts.append(str(path))
            shown = png
    except Exception as exc:  # a chart must never hide the verdict
        evidence["chart_error"] = f"{type(exc).__name__}: {exc}"
    for name in ("health_observations", "dns_answers", "item_by_region", "write", "read_back", "fault_journal"):
        if name in evidence:
            reporting.attach_json(name.replace("_", " "), evidence[name])
    if run.findings:  # what the game day found that is not a failure (e.g. a blind spot)
        reporting.attach_json("findings", run.findings)
    reporting.attach_json("evidence", evidence)
    reporting.attach_metrics("metrics", {**run.figures, "survivor": run.survivor, "time_scale": scale})
    if run.category is not None:
        reporting.set_failure_category(run.category)
    row = summary.summary_row(run, time_scale=scale, run_dir=session.run_dir)
    session.add_row(row)
    reporting.describe_html(overview.scenario_html(row, scale, heading=False,
                                                   image_src=overview.png_data_uri(shown) if shown else None))
