"""The Allure report end to end: a real pytest run (2 xdist workers) using gameday.report.allure, the HTML built by
Allure Report 3, opened in headless Chromium; categories, evidence, scrubbing, analytics removal, history."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gameday.report.html import build_report
from tests.support.reporting_helpers import (
    AWS_KEY_ID,
    AWS_SECRET,
    CANARY,
    PLAIN_CANARY,
    TITLES,
    Browser,
    as_new_run,
    decoded_views,
    history_entries,
    report_test_ids,
)

pytestmark = pytest.mark.xdist_group("reporting-html")  # one sample run and one browser per worker


def test_sample_run_wrote_allure_results_from_both_workers(sample_run):
    proc, alluredir = sample_run["proc"], sample_run["alluredir"]
    assert "2 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    results = [json.loads(p.read_text()) for p in alluredir.glob("*-result.json")]
    assert sorted(r["name"] for r in results) == sorted(TITLES)
    workers = {lab["value"].split("-")[0] for r in results for lab in r["labels"] if lab["name"] == "thread"}
    assert len(workers) == 2, workers  # two xdist workers wrote into the same alluredir
    assert (alluredir / "environment.properties").read_text().count("time_scale=0.01") == 1
    assert json.loads((alluredir / "categories.json").read_text())[0]["name"] == "Fault not effective"
    assert not list(alluredir.glob(".*.tmp"))
    failed = next(r for r in results if r["name"] == TITLES[1])
    steps = [s["name"] for s in failed["steps"]]
    assert steps == ["steady state", "inject", "detect", "verify"]
    labels = {lab["name"]: lab["value"] for lab in failed["labels"]}
    assert labels["failure_category"] == "detection_timeout"
    assert labels["epic"] == "Game day" and labels["failed_region"] == "us-east-1"
    assert failed["statusDetails"]["message"].startswith("AssertionError: [detection_timeout]")


def test_report_is_one_html_file_without_analytics(sample_run):
    html_path: Path = sample_run["html"]
    assert html_path == sample_run["report_dir"] / "report.html"
    html = html_path.read_text()
    for marker in ("googletagmanager", "gtag(", "dataLayer", "G-LNDJ3J7WT0", "google-analytics"):
        assert marker not in html, marker
    srcs = re.findall(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=[\"']([^\"']+)", html)
    assert srcs and all(s.startswith("data:") for s in srcs), srcs  # self-contained: nothing fetched
    assert (sample_run["report_dir"] / "history.jsonl").is_file()
    assert not list(sample_run["report_dir"].glob(".allure-build-*"))


def test_report_in_chromium_shows_titles_environment_timeline_and_metrics(sample_run, browser: Browser,
                                                                          tmp_path):
    html, report_dir = sample_run["html"], sample_run["report_dir"]
    browser.open(html)
    text = browser.wait_text(TITLES[2])
    for title in TITLES:
        assert title in text
    assert "time_scale" in text and "2017.11.29" in text  # environment.properties
    ids = report_test_ids(report_dir)
    browser.open(html, f"{ids[TITLES[0]]}/attachments")
    text = browser.wait_text("timeline")
    assert "metrics" in text and "Lambda configuration before flip" in text
    browser.js("""for (const el of document.querySelectorAll('span')) {
                    if (['timeline', 'metrics'].includes(el.textContent.trim()) && el.closest('button'))
                      el.closest('button').click(); }""")
    images = Browser._wait(lambda: [i for i in browser.js(
        "return [...document.images].map(i => [i.naturalWidth, i.naturalHeight])") if i[0] >= 400], 20)
    assert images, "the timeline PNG is not rendered in the report"
    frames_text = Browser._wait(lambda: browser.js_async(
        """const done = arguments[arguments.length - 1];
           Promise.all([...document.querySelectorAll('iframe')].map(f => fetch(f.src).then(r => r.text())))
             .then(t => done(t.join('\\n')), e => done(''));"""), 20)
    assert "acked_writes" in frames_text and "5123" in frames_text and "client_outage_s" in frames_text
    browser.screenshot(tmp_path / "attachments.png")
    assert (tmp_path / "attachments.png").read_bytes().startswith(b"\x89PNG")


def test_failed_scenario_is_in_its_category_with_evidence(sample_run, browser: Browser):
    html, report_dir = sample_run["html"], sample_run["report_dir"]
    browser.open(html, "categories")
    text = browser.wait_text("Detection timeout")
    blocks = re.split(r"\n(?=Detection timeout|Harness error|Product errors|Test errors)", text)
    detection = next(b for b in blocks if b.startswith("Detection timeout"))
    assert TITLES[1] in detection and TITLES[0] not in detection
    harness = next(b for b in blocks if b.startswith("Harness error"))
    assert TITLES[2] in harness
    ids = report_test_ids(report_dir)
    browser.open(html, f"{ids[TITLES[1]]}/attachments")
    text = browser.wait_text("evidence")
    assert "Category: Detection timeout" in text
    for name in ("evidence", "timeline", "health observations", "Lambda configuration before flip"):
        assert name in text


def test_no_secret_anywhere_under_report_dir(sample_run):
    """Planted: a Lambda environment with a canary value and an AWS secret key (attachment source), the secret
    and a key id also printed to stdout and put in the failure message. None may survive; the flipped key may."""
    report_dir: Path = sample_run["report_dir"]
    files = [p for p in report_dir.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.name.endswith("-result.json") for p in files)
    flipped_seen = False
    for path in files:
        for view in decoded_views(path.read_bytes()):
            for secret in (CANARY, PLAIN_CANARY, AWS_SECRET, AWS_KEY_ID):
                assert secret.encode() not in view, f"{secret} leaked into {path}"
            flipped_seen |= b'"status": "404"' in view and b"API_SECRET" in view
    assert flipped_seen, "the flipped key's value should stay visible in the Lambda configuration attachment"


def test_history_across_builds_shows_previous_run(sample_run, browser: Browser, tmp_path):
    report_dir = tmp_path / "reports"
    first_run = report_dir / "run-1" / "allure-results"
    shutil.copytree(sample_run["alluredir"], first_run)
    first = build_report(report_dir)  # default: the newest run's results, HTML in that run's dir
    assert first == report_dir / "run-1" / "report.html"
    assert len(history_entries(report_dir)) == 1
    build_report(report_dir)  # rebuilding the same run replaces its history entry
    assert len(history_entries(report_dir)) == 1
    as_new_run(first_run, report_dir / "run-2" / "allure-results")
    second = build_report(report_dir)
    assert second == report_dir / "run-2" / "report.html"
    entries = history_entries(report_dir)
    assert len(entries) == 2 and entries[0]["uuid"] != entries[1]["uuid"]
    ids = report_test_ids(report_dir)
    browser.open(second, f"{ids[TITLES[1]]}/history")
    text = browser.wait_text("History\n1")
    assert "History\n1" in text  # one earlier run of this scenario
    browser.open(second, "charts")
    assert "Status dynamics" in browser.wait_text("Status dynamics")


def test_missing_allure_is_one_clear_line(tmp_path):
    from gameday.report.html import ReportToolMissing

    (tmp_path / "r").mkdir()
    with pytest.raises(ReportToolMissing) as info:
        build_report(tmp_path, [tmp_path / "r"], allure_bin=tmp_path / "nowhere" / "allure")
    message = str(info.value)
    assert "\n" not in message and "npm ci" in message
