"""A team's own game day, written against the public API, run by `gameday run --scenarios`: it runs
on a fresh local cloud like the catalog's, and its result lands in summary.json and in the
Allure results."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.run_helpers import gameday

TEAM_GAME_DAY = '''
import pytest

from gameday import RegionFailover, reported_scenario


@pytest.mark.failover
@pytest.mark.destructive
def test_my_failover(gameday, failed_region):
    failover = RegionFailover(gameday, failed_region, scenario="team_failover")
    with reported_scenario(gameday, failover.run, feature="Team failover", story="Our primary region fails"):
        failover.execute()
'''


def test_a_team_game_day_runs_instead_of_the_catalog(tmp_path: Path) -> None:
    team = tmp_path / "team-gamedays"
    team.mkdir()
    (team / "test_team_failover.py").write_text(TEAM_GAME_DAY)
    reports = tmp_path / "reports"
    result = gameday("run", "--scenarios", str(team), "--no-catalog", "--fail-region", "eu-west-1",
                     "--report-dir", str(reports), "--no-html", report_dir=reports)
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = result.rows()
    assert [(r["scenario"], r["failed_region"], r["verdict"]) for r in rows] == [("team_failover", "eu-west-1", "pass")]
    run_dir = next(p for p in reports.iterdir() if (p / "summary.json").exists())
    results = [json.loads(p.read_text()) for p in (run_dir / "allure-results").glob("*-result.json")]
    ours = [r for r in results if r["fullName"].endswith("test_team_failover#test_my_failover")]
    assert [r["status"] for r in ours] == ["passed"], results
    assert {"name": "feature", "value": "Team failover"} in ours[0]["labels"]
