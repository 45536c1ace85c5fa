"""Scheduled runs, as a team keeps them: three runs in one report folder give trend charts with
three points per figure, linked from summary.md relative to itself, the same figures as a table
from `gameday report --history`, and the summary posted to a webhook on loopback."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gameday.report.trends import load_history, trend_series
from tests.support.run_helpers import gameday


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_three_kept_runs_give_trends_a_history_table_and_webhook_posts(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.received.clear()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        for _ in range(3):
            result = gameday("run", "-k", "region_failover", "--fail-region", "eu-west-1", "--report-dir",
                             str(tmp_path), "--no-html", "--notify", url, report_dir=tmp_path)
            assert result.code == 0, result.stdout[-3000:] + result.stderr[-2000:]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    history = load_history(tmp_path)
    assert len(history) == 3
    detection = next(s for s in trend_series(history) if s.figure == "detection_s")
    assert len(detection.points) == 3

    latest = max((p for p in tmp_path.iterdir() if (p / "summary.md").is_file()), key=lambda p: p.name)
    md = (latest / "summary.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert any(link.startswith("trends/") for link in links), md[-2000:]
    for link in links:
        assert not Path(link).is_absolute() and (latest / link).is_file(), link   # resolve from the file's folder

    # The HTML report carries the same trend charts, inline, in its first view.
    built = gameday("report", "--report-dir", str(tmp_path), report_dir=tmp_path)
    assert built.code == 0, built.stderr[-2000:]
    page = (tmp_path / "report.html").read_text() if (tmp_path / "report.html").is_file() else \
        next(tmp_path.rglob("report.html")).read_text()
    trends = page[page.index("id='gameday-trends'"):page.index("id=\"app\"")]
    detection_chart = base64.b64encode((latest / "trends" / "trend-detection_s.png").read_bytes()).decode()
    assert detection_chart in trends

    table = gameday("report", "--report-dir", str(tmp_path), "--history", report_dir=tmp_path)
    assert table.code == 0 and "3 kept runs" in table.stdout
    assert re.search(r"region_failover\s+eu-west-1\s+detection\s+3\s", table.stdout), table.stdout

    assert len(Hook.received) == 3
    posted = Hook.received[-1]
    assert posted["exit_code"] == 0 and posted["rows"][0]["verdict"] == "pass"
    assert posted["rows"][0]["failed_region"] == "eu-west-1" and posted["summary"].endswith("summary.json")
