"""Build the HTML report with Allure Report 3 (npm package `allure`, installed by `npm ci` from package.json).

Why this shape:
- one self-contained HTML file (the awesome plugin's `singleFile`), easy to archive from a scheduled CI job;
- history across runs in `<report-dir>/history.jsonl` (Allure 3 `historyPath`), so trends build up;
- Allure 3's awesome template always embeds a Google Analytics (gtag) snippet that phones home; the builder strips
  it and refuses to publish a report in which it still finds it;
- Allure 3's awesome plugin takes failure categories from its config, not from categories.json, so the builder
  passes `harness.reporting.allure3_categories()` in the generated allurerc;
- the results directories are scrubbed of credential-looking text before Allure reads them (a safety net for
  captured logs, which do not pass through harness.reporting).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from harness.errors import GamedayError
from harness.reporting import allure3_categories, scrub_text

REPO_ROOT = Path(__file__).resolve().parent.parent
HISTORY_FILE = "history.jsonl"
HTML_FILE = "report.html"
_TEXT_SUFFIXES = (".json", ".txt", ".log", ".properties", ".xml", ".html", ".csv", ".uri")
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>\s*", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(?P<body>.*?)</script>\s*", re.I | re.S)
_ANALYTICS_MARKERS = ("googletagmanager", "gtag(", "google-analytics", "dataLayer")


class ReportToolMissing(GamedayError):
    """Node.js or the allure package is not installed."""


def find_allure(allure_bin: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that runs Allure 3 (node + the package's CLI), or ReportToolMissing with the fix in one line."""
    node = shutil.which("node")
    if node is None:
        raise ReportToolMissing("cannot build the HTML report: Node.js (20+) is not installed (`node` not on PATH)")
    candidate = Path(allure_bin or os.environ.get("GAMEDAY_ALLURE_BIN") or
                     REPO_ROOT / "node_modules" / ".bin" / "allure")
    if not candidate.exists():
        raise ReportToolMissing(f"cannot build the HTML report: {candidate} not found; run `npm ci` in {REPO_ROOT}")
    return [node, str(candidate.resolve())]


def strip_analytics(html: str) -> str:
    """Remove external scripts and inline analytics (gtag/dataLayer) snippets; the report data is untouched."""
    html = _EXTERNAL_SCRIPT.sub("", html)

    def inline(m: re.Match[str]) -> str:
        body = m.group("body")
        return "" if ("gtag(" in body or "dataLayer" in body) else m.group(0)

    return _INLINE_SCRIPT.sub(inline, html)


def analytics_left(html: str) -> list[str]:
    """Analytics markers still present outside the base64 report data (empty when clean)."""
    return [marker for marker in _ANALYTICS_MARKERS if marker in html]


def scrub_results(results_dirs: Iterable[Path]) -> int:
    """Redact credential-looking text in every text file of the results dirs, in place. Returns files changed."""
    changed = 0
    for results in results_dirs:
        for path in results.iterdir():
            if not path.is_file() or not path.name.endswith(_TEXT_SUFFIXES):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            clean = scrub_text(text)
            if clean != text:
                path.write_text(clean, encoding="utf-8")
                changed += 1
    return changed


def build_report(report_dir: str | os.PathLike[str], results_dirs: Iterable[str | os.PathLike[str]], *,
                 name: str = "gameday", history_limit: int | None = 100, html_name: str = HTML_FILE,
                 allure_bin: str | os.PathLike[str] | None = None, timeout_s: float = 300.0) -> Path:
    """Generate `<report_dir>/<html_name>` (one self-contained HTML file, analytics removed) from allure-pytest
    results, appending this build to `<report_dir>/history.jsonl`. Returns the HTML path."""
    command = find_allure(allure_bin)
    report_dir = Path(report_dir).resolve()
    results = [Path(r).resolve() for r in results_dirs]
    missing = [str(r) for r in results if not r.is_dir()]
    if missing or not results:
        raise GamedayError(f"cannot build the HTML report: no allure results directory at {', '.join(missing) or '-'}")
    report_dir.mkdir(parents=True, exist_ok=True)
    scrub_results(results)
    with tempfile.TemporaryDirectory(prefix=".allure-build-", dir=report_dir) as tmp:
        work = Path(tmp)
        config = {
            "name": name,
            "output": str(work / "out"),
            "historyPath": str(report_dir / HISTORY_FILE),
            "categories": allure3_categories(),
            "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name}}},
        }
        if history_limit:
            config["historyLimit"] = int(history_limit)
        (work / "allurerc.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALLURE_")}
        env.update(NO_COLOR="1", ALLURE_AGENT_STATE_DIR=str(work / "agent-state"))
        try:
            proc = subprocess.run([*command, "generate", "--config", str(work / "allurerc.json"),
                                   "--cwd", str(work), *map(str, results)],
                                  cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GamedayError(f"allure generate did not finish within {timeout_s:.0f} s") from exc
        index = work / "out" / "index.html"
        if proc.returncode != 0 or not index.is_file():
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise GamedayError(f"allure generate failed (exit {proc.returncode}): "
                               f"{detail[-1] if detail else 'no index.html written'}")
        html = strip_analytics(index.read_text(encoding="utf-8"))
        left = analytics_left(html)
        if left:
            raise GamedayError(f"allure report still contains analytics ({', '.join(left)}); not published")
        target = report_dir / html_name
        staged = work / html_name
        staged.write_text(html, encoding="utf-8")
        os.replace(staged, target)
    return target
