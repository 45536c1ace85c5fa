"""The example team repository (examples/team-gamedays) works as a team would use it: a copy of it,
away from this checkout, with gameday installed from its wheel. Its one custom game day runs with
plain `pytest` in its own folder (the plugin starts a local cloud), and with `gameday run --scenarios`,
and its results land in the rows, summary.json and the Allure results like the catalog's."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.installed_wheel import INSTALLED_GROUP, PROJECT_ROOT, InstalledGameday, installed_gameday

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(INSTALLED_GROUP)]

EXAMPLE = PROJECT_ROOT / "examples" / "team-gamedays"
SCENARIO = "checkout_failover"
REGIONS = ["eu-west-1", "us-east-1"]  # the embedded local cloud's


@pytest.fixture(scope="session")
def installed() -> Iterator[InstalledGameday]:
    with installed_gameday() as install:
        yield install


@pytest.fixture
def team_repo(installed: InstalledGameday) -> Path:
    """A copy of the example, as the team's own checkout, with its requirements installed."""
    repo = installed.workdir("team-gamedays") / "team-gamedays"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "reports", ".pytest_cache"))
    # --no-index: the installed wheel must satisfy the team's requirement; never a download.
    done = installed.run("python", "-m", "pip", "install", "--no-index", "--quiet", "-r", "requirements.txt",
                         cwd=repo, timeout=120)
    assert done.code == 0, done.tail()
    return repo


def _allure_results(results_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in results_dir.glob("*-result.json")]


def _report_test_results(html: str) -> list[dict]:
    """The test results embedded in Allure 3's single-file report (base64 JSON per result)."""
    blobs = re.findall(r'd\("data/test-results/[^"]+\.json","([^"]*)"\)', html)
    return [json.loads(base64.b64decode(blob)) for blob in blobs]


def _assert_team_results(rows: list[dict], results: list[dict]) -> None:
    assert sorted(r["failed_region"] for r in rows) == REGIONS, rows
    for row in rows:
        assert row["scenario"] == SCENARIO
        assert row["verdict"] == "pass", row.get("error")
        assert row["survivor"] not in (None, row["failed_region"])
        assert row["evidence"]["checkout_health_during_outage"]["status"] == 200
    assert sorted(r["name"] for r in results) == [f"{SCENARIO}: {region} fails" for region in REGIONS]
    assert all(r["status"] == "passed" for r in results), [(r["name"], r["status"]) for r in results]


def test_example_runs_with_plain_pytest_in_its_own_folder(installed: InstalledGameday, team_repo: Path) -> None:
    done = installed.run("pytest", cwd=team_repo, timeout=600)
    assert done.code == 0, done.tail()
    assert "2 passed" in done.stdout and "game days" in done.stdout, done.tail()   # the summary table

    (run_dir,) = [p for p in (team_repo / "reports").iterdir() if (p / "rows").is_dir()]
    rows = [json.loads(p.read_text()) for p in sorted((run_dir / "rows").glob("*.json"))]
    _assert_team_results(rows, _allure_results(team_repo / "reports" / "allure-results"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(r["failed_region"] for r in summary["rows"]) == REGIONS


def test_example_runs_instead_of_the_catalog_with_gameday_run(installed: InstalledGameday, team_repo: Path) -> None:
    # The HTML report too, when this checkout has Allure 3 (setup.sh installs it with npm).
    allure = PROJECT_ROOT / "node_modules" / ".bin" / "allure"
    env = {"GAMEDAY_ALLURE_BIN": str(allure)} if allure.exists() and shutil.which("node") else {}
    done = installed.run("gameday", "run", "--scenarios", "tests", "--no-catalog", "--report-dir", "reports",
                         *([] if env else ["--no-html"]), cwd=team_repo, timeout=600, env=env)
    assert done.code == 0, done.tail()

    (run_dir,) = [p for p in (team_repo / "reports").iterdir() if (p / "summary.json").is_file()]
    summary = json.loads((run_dir / "summary.json").read_text())
    _assert_team_results(summary["rows"], _allure_results(run_dir / "allure-results"))
    if env:
        html = (run_dir / "report.html").read_text(encoding="utf-8")
        reported = {(r["name"], r["status"]) for r in _report_test_results(html)}
        assert reported == {(f"{SCENARIO}: {region} fails", "passed") for region in REGIONS}, reported
