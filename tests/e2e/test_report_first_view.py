"""The report leads with the game day: a real `gameday run` (the catalog's failovers and blind spot,
plus a team's game day that fails with a category) and `gameday report`, opened in headless
Chromium. Its first page, before any click, shows every scenario's verdict, headline figures
(the numbers in summary.json, AWS-equivalent seconds beside them) against the SLO and a loaded
chart; a failure's diagnosis comes before its evidence, in the overview and in the test's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.report.overview import HEADLINE
from gameday.report.summary import duration_text
from tests.support.reporting_helpers import Browser
from tests.support.run_helpers import gameday

TEAM_GAME_DAY = '''
import pytest

from gameday import Category, RegionFailover, ScenarioFailed, reported_scenario


@pytest.mark.failover
@pytest.mark.destructive
def test_region_failover_checkout(gameday, failed_region):
    def checkout_check(run):
        raise ScenarioFailed(Category.WRONG_REGION, f"checkout answered from {failed_region} while it was failed")

    failover = RegionFailover(gameday, failed_region, scenario="checkout_failover",
                              between_detection_and_write=checkout_check)
    with reported_scenario(gameday, failover.run, feature="Checkout", story="Checkout moves with the failover"):
        failover.execute()
'''
DETECTION_SLO_S = 600  # AWS seconds: far above what the local cloud's failover takes, so it is met

# Each scenario block of the overview: its text, where it sits, and whether its chart loaded.
BLOCKS_JS = """
const section = document.getElementById('gameday-overview');
if (!section) return null;
const app = document.getElementById('app');
return {
  first: section.compareDocumentPosition(app) === Node.DOCUMENT_POSITION_FOLLOWING,
  top: section.getBoundingClientRect().top, scrollY: window.scrollY,
  blocks: [...section.querySelectorAll('.gameday-scenario')].map(b => {
    const img = b.querySelector('img.gameday-timeline');
    const diag = b.querySelector('.gameday-diagnosis');
    const figures = b.querySelector('.gameday-figures');
    const before = (x, y) => Boolean(x && y && (x.compareDocumentPosition(y) & Node.DOCUMENT_POSITION_FOLLOWING));
    return {text: b.innerText, link: (b.querySelector('h3 a') || {}).hash || null,
            image: img ? [img.complete, img.naturalWidth, img.naturalHeight] : null,
            diagnosis: diag ? diag.innerText : null,
            diagnosis_first: before(diag, figures) && before(diag, img)};
  }),
};
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("first-view")
    team = base / "team-gamedays"
    team.mkdir()
    (team / "test_checkout.py").write_text(TEAM_GAME_DAY)
    reports = base / "reports"
    run = gameday("run", "-k", "region_failover or blind", "--scenarios", str(team), "--slo",
                  f"detection_s={DETECTION_SLO_S}", "--report-dir", str(reports), "--no-html", report_dir=reports)
    assert run.code == 1, run.stdout[-4000:] + run.stderr[-2000:]  # the team's game day fails, nothing else
    built = gameday("report", "--report-dir", str(reports), report_dir=reports, timeout=300)
    assert built.code == 0, built.stdout + built.stderr
    match = re.search(r"gameday report: (\S+)", built.stdout)
    assert match, built.stdout
    return {"summary": run.summary(), "html": Path(match.group(1))}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def _blocks(browser: Browser, html: Path) -> dict[str, Any]:
    browser.open(html)
    return Browser._wait(lambda: _loaded(browser.js(BLOCKS_JS)), 60)


def _loaded(view: Any) -> Any:
    if not view or not view["blocks"]:
        return None
    return view if all(b["image"] and b["image"][0] for b in view["blocks"]) else None


def _title(row: dict[str, Any]) -> str:
    return f"{row['scenario']} [{row['failed_region']}]"


def test_first_view_shows_every_scenario_with_figures_against_slos_and_its_chart(report, browser: Browser):
    summary, html = report["summary"], report["html"]
    rows = summary["rows"]
    scale = summary["time_scale"]
    assert scale < 1.0
    assert sorted((r["scenario"], r["verdict"]) for r in rows) == [
        ("blind_spot", "pass"), ("blind_spot", "pass"), ("checkout_failover", "fail"), ("checkout_failover", "fail"),
        ("region_failover", "pass"), ("region_failover", "pass")]
    view = _blocks(browser, html)
    assert view["first"] and view["scrollY"] == 0 and view["top"] == 0, view  # the page opens on it
    assert len(view["blocks"]) == len(rows)
    for row in rows:
        block = next(b for b in view["blocks"] if b["text"].startswith(_title(row) + " "))
        assert row["verdict"].upper() in block["text"].splitlines()[0]
        measured = {key: row["metrics"][key] for _, key in HEADLINE if row["metrics"].get(key) is not None}
        assert measured, row["metrics"]
        for key, value in measured.items():
            text = duration_text(value, scale) if key.endswith("_s") else str(value)
            assert "AWS)" in text or not key.endswith("_s")
            assert text in block["text"], (key, text, block["text"])
        if "detection_s" in measured:
            assert f"{duration_text(measured['detection_s'], scale)} / SLO {DETECTION_SLO_S} s" in block["text"]
            assert re.search(r"detection\t.*\twithin SLO", block["text"]), block["text"]
        width, height = block["image"][1:]
        assert width > 0 and height > 0, block  # the chart PNG decoded, inline
        assert block["link"], block  # and the scenario links to its Allure test page


def test_failed_scenario_shows_its_diagnosis_before_its_evidence(report, browser: Browser):
    rows = [r for r in report["summary"]["rows"] if r["verdict"] == "fail"]
    assert rows and all(r["failure_category"] == "wrong_region" for r in rows)
    view = _blocks(browser, report["html"])
    for row in rows:
        block = next(b for b in view["blocks"] if b["text"].startswith(_title(row) + " "))
        assert block["diagnosis"] and "Wrong region" in block["diagnosis"], block
        assert row["error"] in block["diagnosis"] and "Act on:" in block["diagnosis"]
        assert block["diagnosis_first"], block  # above the figures table and the chart
    passed = [b for b in view["blocks"] if "PASS" in b["text"].splitlines()[0]]
    assert passed and not any(b["diagnosis"] for b in passed)

    # Inside the failed test's own page: the description (diagnosis, figures, chart) leads, steps follow.
    failed = next(b for b in view["blocks"] if b["diagnosis"])
    browser.open(report["html"], failed["link"].lstrip("#"))
    page = Browser._wait(lambda: browser.js("""
        const frame = [...document.querySelectorAll('iframe')].find(f => (f.srcdoc || '').includes('gameday-diagnosis'));
        const step = [...document.querySelectorAll('*')].find(e => e.children.length === 0
                       && e.textContent.trim() === 'steady state');
        const doc = frame && frame.contentDocument;
        // not rendered yet (before its srcdoc loads, a frame holds an empty about:blank, also 'complete')
        if (!step || !doc || !doc.body || doc.readyState !== 'complete'
            || !doc.querySelector('.gameday-diagnosis')) return null;
        const img = doc.querySelector('img.gameday-timeline');
        if (img && !img.complete) return null;
        return {frame_top: frame.getBoundingClientRect().top, step_top: step.getBoundingClientRect().top,
                text: doc ? doc.body.innerText : '', image: img ? img.naturalWidth : null};"""), 60)
    assert page and "frame_top" in page, f"the failed test's page has no description with its diagnosis: {page}"
    assert page["frame_top"] < page["step_top"], page
    assert "Wrong region" in page["text"] and "detection" in page["text"], page
    assert page["image"], page  # the chart decoded inside the description too
