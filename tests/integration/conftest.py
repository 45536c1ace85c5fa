"""Fixtures of the integration tests: the moto server and a Health function on it (tests.support.moto_rig),
loopback regions and a DNS zone (tests.support.loopback_servers), and for the reporting tests one real pytest
run (subprocess, 2 xdist workers) of a game-day-shaped module that uses gameday.report.allure, the HTML report
built from its results, and a headless Chromium session."""

from __future__ import annotations

import pytest

from tests.support.loopback_servers import dns_zone, regions  # noqa: F401  (fixtures)
from tests.support.moto_rig import aws_endpoint, health_function, health_site  # noqa: F401  (fixtures)
from tests.support.reporting_helpers import Browser, run_sample


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One sample run + one report build, shared by the report tests (Allure results live in the report dir)."""
    from gameday.report.html import build_report

    base = tmp_path_factory.mktemp("gameday-report")
    report_dir = base / "reports"
    alluredir = report_dir / "allure-results"
    proc = run_sample(base / "work", alluredir)
    html = build_report(report_dir, [alluredir])
    return {"proc": proc, "report_dir": report_dir, "alluredir": alluredir, "html": html}


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


