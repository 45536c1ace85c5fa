"""Charts, the plain summary, scrubbing and the category convention, without Allure's HTML."""

from __future__ import annotations

import base64
import io
import json
import random
import struct

import pytest

from gameday.report import allure as reporting
from gameday.report import charts, summary
from gameday.report.html import analytics_left, strip_analytics
from tests.support.reporting_helpers import decoded_views

T0 = 1_790_000_000.0
MARKS = {"fault": T0 + 20, "detected": T0 + 30, "dns_shift": T0 + 35, "restore": T0 + 45, "recovered": T0 + 50}


def traffic(n: int) -> list[dict]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        t = T0 + i * (60.0 / n)
        region = "eu-west-1" if i % 2 else "us-east-1"
        ok = not (region == "eu-west-1" and 20 < t - T0 < 35 and rng.random() < 0.7)
        if region == "eu-west-1" and 35 <= t - T0 < 50:
            region = "us-east-1"
        out.append({"t_start": t, "t_end": t + 0.01, "op": "put" if i % 3 else "get", "ok": ok,
                    "status": 200 if ok else 503, "latency_s": 0.01, "region": region, "item_id": i,
                    "error": None if ok else "HTTP 503"})
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", data[16:24])


def pixels(data: bytes):
    from matplotlib import image

    return image.imread(io.BytesIO(data), format="png")


def colour_pixels(img, rgb_hex: str, tol: float = 0.03) -> int:
    rgb = [int(rgb_hex[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    diff = abs(img[..., :3] - rgb).max(axis=-1)
    return int((diff < tol).sum())


def has_colour(img, rgb_hex: str, min_pixels: int = 2000) -> bool:
    """More than the legend swatch of that colour: an area of the chart is painted with it."""
    return colour_pixels(img, rgb_hex) > min_pixels


def test_timeline_chart_is_a_png_with_regions_failures_and_marks(tmp_path):
    data = charts.timeline_chart(traffic(6000), MARKS, tmp_path / "timeline.png", time_scale=0.01)
    assert (tmp_path / "timeline.png").read_bytes() == data
    width, height = png_size(data)
    assert width == 900 and height > 300  # two region panels
    img = pixels(data)
    assert has_colour(img, charts.OK_COLOUR) and has_colour(img, charts.FAIL_COLOUR)
    for _, _, colour in charts.MARKS:
        assert colour_pixels(img, colour, tol=0.12) > 80, colour  # a dashed, antialiased line


def test_timeline_without_failures_has_no_failure_colour():
    events = [dict(e, ok=True) for e in traffic(2000)]
    img = pixels(charts.timeline_chart(events, {}))
    assert has_colour(img, charts.OK_COLOUR) and not has_colour(img, charts.FAIL_COLOUR)


def test_timeline_chart_renders_100k_events():
    # Its speed is a figure from bench/report.py, not an assertion here.
    data = charts.timeline_chart(traffic(100_000), MARKS, time_scale=0.01)
    assert png_size(data)[0] == 900


def test_health_chart_shows_failing_fraction_per_region():
    obs = [{"t": T0 + i * 0.5, "region": r, "failing": 16 if (r == "eu-west-1" and 28 < i * 0.5 < 47) else 0,
            "total": 16} for i in range(120) for r in ("eu-west-1", "us-east-1")]
    obs.append({"t": T0 + 61, "region": "eu-west-1", "healthy_fraction": 1.0})
    data = charts.health_chart(obs, MARKS, time_scale=0.01)
    assert png_size(data)[0] == 900
    assert colour_pixels(pixels(data), "#1f77b4") > 300  # first region's line


def rows(tmp_path):
    chart = summary.chart_file(tmp_path / "run", "failover[eu-west-1]", "timeline")
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(charts.timeline_chart(traffic(600), MARKS))
    return [
        {"scenario": "failover[eu-west-1]", "failed_region": "eu-west-1", "survivor": "us-east-1",
         "detection_s": 0.31, "dns_shift_s": 0.92, "verdict": "pass", "failure_category": None,
         "evidence": {"item": {"id": 1, "aws:rep:updateregion": "us-east-1"},
                      "lambda": {"Environment": {"Variables": {"status": "404", "SECRET_X": "canary-sum-1"}}}},
         "metrics": {"acked_writes": 5123, "rpo_lost_writes": 0, "client_outage_s": 1.2, "errors": 17,
                     "replication_lag_p50_s": 0.004, "replication_lag_p99_s": 0.02, "failback_s": 0.5},
         "charts": [str(chart)]},
        {"scenario": "failover[us-east-1]", "failed_region": "us-east-1", "survivor": "eu-west-1",
         "detection_s": None, "dns_shift_s": None, "verdict": "fail", "failure_category": "detection_timeout",
         "evidence": {"message": "[detection_timeout] us-east-1 still healthy after 0.45 s"}, "metrics": {}},
    ]


def test_summary_json_and_md_shape(tmp_path):
    deployment = {"target": "local", "routing": "failover", "time_scale": 0.01,
                  "aws_endpoint_url": "http://127.0.0.1:4566",
                  "regions": [{"name": "eu-west-1"}, {"name": "us-east-1"}],
                  "table": {"name": "T", "version": "2017.11.29"}}
    json_path, md_path = summary.write_summary(tmp_path / "run", "20261128-1800", "2026-11-28T18:00:00Z",
                                               deployment, rows(tmp_path))
    doc = json.loads(json_path.read_text())
    assert set(doc) >= {"run_id", "started", "deployment", "rows"}
    first, second = doc["rows"]
    for key in ("scenario", "failed_region", "survivor", "detection_s", "dns_shift_s", "verdict",
                "failure_category", "evidence", "metrics", *summary.LOAD_FIGURES):
        assert key in first and key in second, key
    assert first["acked_writes"] == 5123 and first["rpo_lost_writes"] == 0 and first["failback_s"] == 0.5
    assert first["aws_equivalent_s"]["detection_s"] == pytest.approx(31.0)
    assert first["charts"] == ["charts/failover-eu-west-1-timeline.png"]
    assert first["evidence"]["lambda"]["Environment"]["Variables"] == {"status": "404", "SECRET_X": "<redacted>"}
    assert second["verdict"] == "fail" and second["failure_category"] == "detection_timeout"
    assert "canary-sum-1" not in json_path.read_text() + md_path.read_text()

    md = md_path.read_text()
    header = next(line for line in md.splitlines() if line.startswith("| scenario"))
    for column in ("failed region", "survivor", "detection", "DNS shift", "verdict", "acked writes", "RPO lost",
                   "client outage", "errors", "repl lag p50", "repl lag p99", "failback"):
        assert column in header
    assert "0.31 s (31 s AWS)" in md and "0.92 s (92 s AWS)" in md
    assert "fail (detection_timeout)" in md
    assert "**failover[us-east-1]**: detection_timeout: [detection_timeout] us-east-1 still healthy" in md
    assert "![failover-eu-west-1-timeline](charts/failover-eu-west-1-timeline.png)" in md
    assert (tmp_path / "run" / "charts" / "failover-eu-west-1-timeline.png").is_file()


def test_terminal_table_aligns_and_shows_aws_seconds(tmp_path):
    text = summary.render_terminal(rows(tmp_path), time_scale=0.01)
    lines = text.splitlines()
    assert lines[0].startswith("scenario") and set(lines[1]) <= {"-", " "}
    assert "0.31 s (31 s AWS)" in text and "fail (detection_timeout)" in text
    assert lines[0].index("failed region") == lines[2].index("  eu-west-1") + 2
    unscaled = summary.render_terminal(rows(tmp_path), time_scale=1.0)
    assert "AWS" not in unscaled and "0.31 s" in unscaled


def test_scrub_keeps_flipped_key_and_redacts_environment_and_credentials():
    config = {"FunctionName": "gameday-Health", "Environment": {"Variables": {
        "status": "404", "tableName": "MyGlobalTable-canary", "API_TOKEN": "tok-canary-9"}},
        "credentials": {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "s3cr3t-canary",
                        "SessionToken": "FQoGZXIvYXdzEXAMPLE"},
        "note": "password=hunter2-canary and AKIAIOSFODNN7EXAMPLE",
        "digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
    clean = json.dumps(reporting.scrub(config))
    for secret in ("MyGlobalTable-canary", "tok-canary-9", "AKIAIOSFODNN7EXAMPLE", "s3cr3t-canary",
                   "FQoGZXIvYXdzEXAMPLE", "hunter2-canary"):
        assert secret not in clean
    assert '"status": "404"' in clean and "da39a3ee5e6b4b0d3255bfef95601890afd80709" in clean
    assert "gameday-Health" in clean
    # a secret-named value seen once is redacted from later free text too; plain configuration is not
    text = reporting.scrub_text("sent tok-canary-9 to MyGlobalTable-canary")
    assert text == "sent <redacted> to MyGlobalTable-canary"


def test_category_convention():
    message = reporting.categorised("no_dns_shift", "DNS still answers eu-west-1")
    assert message == "[no_dns_shift] DNS still answers eu-west-1"
    assert reporting.category_of(message) == "no_dns_shift"
    assert reporting.category_of("AssertionError: " + message) == "no_dns_shift"
    assert reporting.category_of(AssertionError(message)) == "no_dns_shift"
    assert reporting.category_of("plain failure") is None
    with pytest.raises(ValueError, match="unknown failure category"):
        reporting.categorised("bad_luck", "x")
    assert [c["id"] for c in reporting.allure3_categories()] == list(reporting.CATEGORY_IDS)
    assert {"detection_timeout", "no_dns_shift", "wrong_region", "lost_writes", "rollback_failure",
            "harness_error", "fault_not_effective"} <= set(reporting.CATEGORY_IDS)  # the categories a game day tells apart
    assert reporting.CATEGORY_IDS[-1] == "harness_error"  # the catch-all for broken tests comes last


def test_phase_records_times_without_allure():
    record = reporting.RunRecord(scenario="s")
    with reporting.recording(record):
        with reporting.phase("steady state") as entry:
            entry["budget_s"] = 1.0
        with pytest.raises(AssertionError):
            with reporting.phase("verify"):
                raise AssertionError(reporting.categorised("lost_writes", "2 missing"))
    assert [p["name"] for p in record.phases] == ["steady state", "verify"]
    assert record.phases[0]["outcome"] == "passed" and record.phases[0]["budget_s"] == 1.0
    assert record.phases[1]["outcome"] == "failed" and "[lost_writes]" in record.phases[1]["error"]
    for p in record.phases:
        assert p["end"] >= p["start"] and p["duration_s"] >= 0


def test_environment_and_categories_files_are_atomic_and_idempotent(tmp_path):
    props = reporting.environment_properties(
        {"target": "aws", "routing": "latency", "time_scale": 1.0, "table": {"version": "2019.11.21"},
         "regions": [{"name": "eu-west-1"}, {"name": "ap-southeast-2"}]}, health_check_interval_s=30,
        failure_threshold=2)
    for _ in range(2):
        reporting.write_environment(tmp_path, props)
        reporting.write_categories(tmp_path)
    text = (tmp_path / "environment.properties").read_text()
    assert "regions=eu-west-1, ap-southeast-2" in text and "health_check.interval_s=30" in text
    assert "routing=latency" in text and "table.version=2019.11.21" in text and "gameday.version=" in text
    assert len(json.loads((tmp_path / "categories.json").read_text())) == len(reporting.CATEGORIES) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["categories.json", "environment.properties"]


def test_strip_analytics_removes_gtag_and_keeps_report_data():
    html = ('<head><script>window.allureReportOptions = {}</script></head><body><div id="app"></div>'
            '<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
            "<script>\n window.dataLayer = window.dataLayer || [];\n function gtag(){dataLayer.push(arguments);}\n"
            " gtag('js', new Date());\n</script>\n<script async>d('a', 'eyJ9')</script></body>")
    clean = strip_analytics(html)
    assert analytics_left(clean) == [] and analytics_left(html)
    assert "allureReportOptions" in clean and "d('a', 'eyJ9')" in clean


def test_decoded_views_find_base64_embedded_text():
    blob = b'd("data/attachments/x.json","' + base64.b64encode(b'{"API_SECRET": "canary-b64"}') + b'")'
    assert any(b"canary-b64" in v for v in decoded_views(blob))


def test_pytest_is_below_9_1_for_allure_pytest_2_16():
    """allure-pytest 2.16 with pytest >= 9.1 adds spurious fixture-teardown entries (allure-python#918)."""
    major, minor = (int(x) for x in pytest.__version__.split(".")[:2])
    assert (major, minor) < (9, 1), f"pytest {pytest.__version__}: keep pytest<9.1 while allure-pytest is 2.16"


def test_terminal_table_puts_each_figure_beside_its_slo_and_says_what_to_act_on():
    def row(scenario, verdict, category, detection, error=None):
        return {"scenario": scenario, "failed_region": "eu-west-1", "verdict": verdict, "failure_category": category,
                "error": error, "detection_s": detection, "dns_shift_s": 0.5,
                "evidence": {"slo": {"targets": {"detection_s": 60, "dns_shift_s": {"max": 40}}}}}
    rows = [row("region_failover", "pass", None, 0.45),
            row("blind_spot", "fail", "blind_spot", 0.9, "for 180 s writes to eu-west-1 failed\ndetails")]
    text = summary.render_terminal(rows, time_scale=0.01)
    failover, blind = (line for line in text.splitlines() if line.startswith(("region_failover", "blind_spot")))
    assert "0.45 s (45 s AWS) ≤ 60" in failover and "0.50 s (50 s AWS) > 40 !" in failover
    assert "0.90 s (90 s AWS) > 60 !" in blind
    (diagnosis,) = [line for line in text.splitlines() if line.startswith("diagnosis:")]
    assert diagnosis.startswith("diagnosis: blind_spot [eu-west-1]: Blind spot: for 180 s writes to eu-west-1 failed")
    assert "act on: the health check never saw the region's write path fail" in diagnosis and "details" not in diagnosis
