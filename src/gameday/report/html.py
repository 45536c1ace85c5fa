"""Build the HTML report with Allure Report 3 (npm package `allure`, installed by `npm ci` from package.json).

Why this shape:
- one self-contained HTML file (the awesome plugin's `singleFile`), easy to archive from a scheduled CI job;
- history across runs in `<report-dir>/history.jsonl` (Allure 3 `historyPath`), so trends build up; rebuilding
  the same results replaces their entry instead of adding one;
- Allure 3's awesome template always embeds a Google Analytics (gtag) snippet that phones home; the builder strips
  it and refuses to publish a report in which it still finds it;
- Allure 3's awesome plugin takes failure categories from its config, not from categories.json, so the builder
  passes `gameday.report.allure.allure3_categories()` in the generated allurerc;
- the results directories are scrubbed of credential-looking text before Allure reads them (a safety net for
  captured logs, which do not pass through gameday.report.allure);
- the report opens on the game day: Allure 3 has no place for custom content on its first page (its sections
  are the test tree, charts, timeline and metrics; descriptions and global attachments are a click away), so
  when the results sit in a run folder with summary.json, the builder puts gameday.report.overview's section
  (verdicts, diagnoses, figures against the SLOs, charts inline; each scenario linked to its Allure page)
  above the Allure app in the same file.
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
from typing import Any

from gameday.errors import GamedayError
from gameday.report import overview
from gameday.report.allure import SCENARIO_LABEL, allure3_categories, scrub_text

HISTORY_FILE = "history.jsonl"
HTML_FILE = "report.html"
RESULTS_DIR = "allure-results"  # per run: <report-dir>/<run-id>/allure-results (gameday.cli.run)
_TEXT_SUFFIXES = (".json", ".txt", ".log", ".properties", ".xml", ".html", ".csv", ".uri")
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>\s*", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(?P<body>.*?)</script>\s*", re.I | re.S)
_ANALYTICS_MARKERS = ("googletagmanager", "gtag(", "google-analytics", "dataLayer")


class ReportToolMissing(GamedayError):
    """Node.js or the allure package is not installed."""


def _allure_candidates() -> list[Path]:
    """Where Allure 3 may be: node_modules/.bin of the working directory or any folder above it, then of
    the folder gameday is installed in (an editable checkout), then `allure` on PATH."""
    places = [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    found = [folder / "node_modules" / ".bin" / "allure" for folder in places]
    on_path = shutil.which("allure")
    return found + ([Path(on_path)] if on_path else [])


def find_allure(allure_bin: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that runs Allure 3 (node + the package's CLI), or ReportToolMissing with the fix in one line.
    Precedence: the argument, then GAMEDAY_ALLURE_BIN, then the first of `_allure_candidates()` that exists."""
    node = shutil.which("node")
    if node is None:
        raise ReportToolMissing("cannot build the HTML report: Node.js (20+) is not installed (`node` not on PATH)")
    explicit = allure_bin or os.environ.get("GAMEDAY_ALLURE_BIN")
    if explicit:
        if not Path(explicit).exists():
            where = "GAMEDAY_ALLURE_BIN" if not allure_bin else "allure_bin"
            raise ReportToolMissing(f"cannot build the HTML report: {explicit} ({where}) not found; run `npm ci` "
                                    "where package.json names allure, or point GAMEDAY_ALLURE_BIN at it")
        return [node, str(Path(explicit).resolve())]
    for candidate in _allure_candidates():
        if candidate.exists():
            return [node, str(candidate.resolve())]
    raise ReportToolMissing("cannot build the HTML report: Allure 3 not found; run `npm ci` in the gameday "
                            "checkout (or `npm install allure@3` here), or set GAMEDAY_ALLURE_BIN")


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


def test_links(history: Path) -> dict[str, str]:
    """Row title (scenario [region]) -> the fragment of its Allure test page, from this build's history entry."""
    lines = [line for line in history.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if history.is_file() else []
    try:
        latest = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}
    links = {}
    for result in (latest.get("testResults") or {}).values():
        labels = {lab.get("name"): lab.get("value") for lab in result.get("labels") or []}
        if labels.get(SCENARIO_LABEL) and result.get("id"):
            title = overview.row_title({"scenario": labels[SCENARIO_LABEL], "failed_region": labels.get("failed_region")})
            links[title] = f"#{result['id']}"
    return links


def overview_section(results: Iterable[Path], history: Path) -> str:
    """The game-day overview of the runs whose folders hold these results ('' when none has summary.json)."""
    parts = []
    for run_dir in dict.fromkeys(r.parent for r in results):
        path = run_dir / "summary.json"
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        parts.append(overview.overview_html(doc, run_dir, test_links(history)))
    return scrub_text("".join(parts))


def lead_with(html: str, section: str) -> str:
    """`section` as the page's first content, above the Allure app (the file stays self-contained)."""
    if not section:
        return html
    marker = '<div id="app">'
    at = html.find(marker)
    if at < 0:
        raise GamedayError("allure report has no <div id=\"app\">; cannot put the game-day overview first")
    return html[:at] + section + html[at:]


def latest_results(report_dir: Path) -> Path:
    """The newest run's allure results under `report_dir` (`<report_dir>/<run-id>/allure-results`)."""
    runs = [p for p in report_dir.glob(f"*/{RESULTS_DIR}") if p.is_dir() and any(p.iterdir())]
    if not runs:
        raise GamedayError(f"cannot build the HTML report: no run with {RESULTS_DIR}/ under {report_dir} "
                           f"(run `gameday run --report-dir {report_dir}` first)")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _result_ids(entry: dict) -> set[str]:
    return {str(tr.get("id")) for tr in (entry.get("testResults") or {}).values()}


def dedupe_history(path: Path) -> None:
    """Rebuilding the report of the same results must not count that run twice in the trends: when the newest
    history entry has exactly the test results of the one before it, the older duplicate is dropped."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < 2:
        return
    try:
        last, previous = json.loads(lines[-1]), json.loads(lines[-2])
    except json.JSONDecodeError:
        return
    if _result_ids(last) and _result_ids(last) == _result_ids(previous):
        del lines[-2]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def build_report(report_dir: str | os.PathLike[str],
                 results_dirs: Iterable[str | os.PathLike[str]] | None = None, *,
                 name: str = "gameday", history_limit: int | None = 100, html_name: str | None = None,
                 allure_bin: str | os.PathLike[str] | None = None, timeout_s: float = 300.0) -> Path:
    """Generate one self-contained HTML file (analytics removed) from allure-pytest results, appending this
    build to `<report_dir>/history.jsonl` (trends across runs). Returns the HTML path.

    `results_dirs` default: the newest `<report_dir>/<run-id>/allure-results`, and then the HTML goes to
    `<report_dir>/<run-id>/report.html`; otherwise to `<report_dir>/<html_name or report.html>`.
    """
    command = find_allure(allure_bin)
    report_dir = Path(report_dir).resolve()
    if results_dirs is None:
        latest = latest_results(report_dir)
        results = [latest]
        html_name = html_name or f"{latest.parent.name}/{HTML_FILE}"
    else:
        results = [Path(r).resolve() for r in results_dirs]
    missing = [str(r) for r in results if not r.is_dir()]
    if missing or not results:
        raise GamedayError(f"cannot build the HTML report: no allure results directory at {', '.join(missing) or '-'}")
    target = report_dir / (html_name or HTML_FILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    scrub_results(results)
    history = report_dir / HISTORY_FILE
    with tempfile.TemporaryDirectory(prefix=".allure-build-", dir=report_dir) as tmp:
        work = Path(tmp)
        config: dict[str, Any] = {
            "name": name,
            "output": str(work / "out"),
            "historyPath": str(history),
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
        html = lead_with(strip_analytics(index.read_text(encoding="utf-8")), overview_section(results, history))
        left = analytics_left(html)
        if left:
            raise GamedayError(f"allure report still contains analytics ({', '.join(left)}); not published")
        staged = target.parent / f".{target.name}.tmp"
        staged.write_text(html, encoding="utf-8")
        os.replace(staged, target)
    dedupe_history(history)
    return target
