"""`gameday run` around pytest: the pytest arguments, then the summary and the report."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from gameday.errors import GamedayError, UsageError

if TYPE_CHECKING:
    from gameday.cli.progress import RunProgress

ALLURE_RESULTS = "allure-results"


def catalog_dir() -> Path:
    """The game-day catalog shipped with gameday (package data, read where it is installed)."""
    return Path(str(files("gameday.catalog")))


#: Plugins a catalog-only run loads (pytest's entry-point autoload is off for it): what the catalog
#: uses and nothing else, because every plugin an environment happens to have installed (a property
#: testing library's, a benchmark's...) costs start-up time and may change how tests run.
GAMEDAY_PLUGIN = "gameday.plugin"
ALLURE_PLUGIN = "allure_pytest.plugin"
XDIST_PLUGIN = "xdist.plugin"
#: pytest's built-in plugins a catalog run leaves out: what the catalog never uses (doctests,
#: unittest classes, --pdb, setup plans...) costs start-up time for nothing. unraisableexception
#: runs gc.collect five times as the session ends, which after the procedures' imports costs a
#: noticeable part of a short run; without it Python's own hook still prints an unraisable
#: exception to stderr. The catalog's verdicts are ScenarioFailed with their own messages, never
#: bare asserts, so its modules are not rewritten (--assert=plain).
BUILTINS_LEFT_OUT = ("unraisableexception", "doctest", "pastebin", "legacypath", "unittest", "setuponly",
                     "setupplan", "stepwise", "subtests", "debugging")
AUTOLOAD_ENV = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


def scenario_dirs(args: argparse.Namespace) -> list[Path]:
    """The --scenarios folders, checked before pytest starts: a typo must not run the catalog alone
    and pass, and --no-catalog without them would run nothing."""
    folders = [Path(folder) for folder in getattr(args, "scenarios", None) or []]
    for folder in folders:
        if not folder.exists():
            raise UsageError(f"--scenarios: no such directory: {folder}")
        if not (folder.is_dir() or folder.suffix == ".py"):
            raise UsageError(f"--scenarios: expected a directory of game days (or a .py file), got {folder}")
    if getattr(args, "no_catalog", False) and not folders:
        raise UsageError("--no-catalog: give at least one --scenarios DIR to run instead of the catalog")
    return [folder.resolve() for folder in folders]


def loads_own_plugins(args: argparse.Namespace) -> bool:
    """Only the catalog: gameday knows every plugin it needs, so it names them and loads no others.
    A team's game days may rely on plugins of their own environment, so with --scenarios the
    environment's plugins load as they would under plain pytest."""
    return not getattr(args, "scenarios", None)


def pytest_args_for_run(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The catalog (unless --no-catalog) and every --scenarios folder, with the catalog's settings.
    The root is the folder that holds the gameday package, so the catalog's node ids (and the
    Allure history keyed by them) are the same wherever gameday is installed."""
    catalog = catalog_dir()
    paths = [] if getattr(args, "no_catalog", False) else [str(catalog)]
    paths += [str(folder) for folder in scenario_dirs(args)]
    argv = [*paths, "--rootdir", str(catalog.parents[1]), "-c", str(catalog / "pytest.ini"),
            "-p", "no:cacheprovider", "--run-dir", str(run_dir), "--no-gameday-summary",
            "--alluredir", str(run_dir / ALLURE_RESULTS), "-q", "-rfEs", "--gameday-progress", "events",
            "-o", "console_output_style=classic"]
    if loads_own_plugins(args):
        argv += ["-p", GAMEDAY_PLUGIN, "-p", ALLURE_PLUGIN]
        for name in BUILTINS_LEFT_OUT:
            argv += ["-p", f"no:{name}"]
        argv.append("--assert=plain")
        if args.n:
            argv += ["-p", XDIST_PLUGIN]
    if args.deployment:
        argv += ["--deployment", str(Path(args.deployment).resolve())]
    if args.k:
        argv += ["-k", args.k]
    if args.m:
        argv += ["-m", args.m]
    if args.n:
        # Each worker starts its own local cloud; against a shared deployment the destructive
        # scenarios carry one xdist_group, and loadgroup keeps them on one worker.
        argv += ["-n", str(args.n), "--dist", "loadgroup"]
    if args.fail_region:
        argv += ["--fail-region", args.fail_region]
    if args.time_scale is not None:
        argv += ["--time-scale", str(args.time_scale)]
    if getattr(args, "regions", None):
        argv += ["--local-regions", args.regions]
    if getattr(args, "routing", None):
        argv += ["--local-routing", args.routing]
    if getattr(args, "pairs", None):
        argv += ["--local-pairs", args.pairs]
    if getattr(args, "consistency", None):
        argv += ["--local-consistency", args.consistency]
    if getattr(args, "witness", None):
        argv += ["--local-witness", args.witness]
    for option in ("load_acked_writes", "load_rate", "load_write_ratio"):
        value = getattr(args, option, None)
        if value is not None:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    for slo in getattr(args, "slo", None) or []:
        argv += ["--slo", slo]
    if getattr(args, "junitxml", None):
        argv += ["--junitxml", str(Path(args.junitxml).resolve())]
    return argv


def run_pytest(argv: list[str], *, autoload: bool, plugins: list[object] | None = None) -> int:
    """pytest in this process. Without autoload, the environment variable is set only for the
    run (xdist workers inherit it while they start) and put back afterwards."""
    import pytest

    saved = os.environ.get(AUTOLOAD_ENV)
    if not autoload:
        os.environ[AUTOLOAD_ENV] = "1"
    try:
        return int(pytest.main(argv, plugins=plugins))
    finally:
        if saved is None:
            os.environ.pop(AUTOLOAD_ENV, None)
        else:
            os.environ[AUTOLOAD_ENV] = saved


def latest_run_dir(report_dir: Path) -> Path | None:
    runs = [p for p in report_dir.iterdir() if p.is_dir() and (p / ALLURE_RESULTS).is_dir()] if report_dir.is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def add_trends(run_dir: Path, md_path: Path) -> list[Path]:
    """Charts of each figure across the runs kept beside this one (two or more), linked from the run's
    summary.md relative to it."""
    from gameday.report.trends import TREND_FIGURES, load_history, trend_charts, trend_series

    history = load_history(run_dir.parent)
    if len(history) < 2:
        return []
    charts = trend_charts(trend_series(history), run_dir / "trends")
    if charts:
        lines = ["", "## Trends across kept runs", "",
                 f"{len(history)} runs in {run_dir.parent.name}/ (AWS-equivalent seconds; dashed: the SLO).", ""]
        lines += [f"![{TREND_FIGURES[figure]}](trends/{path.name})" for figure, path in charts.items()]
        md_path.write_text(md_path.read_text() + "\n".join(lines) + "\n")
    return list(charts.values())


def finish_run(run_dir: Path, pytest_code: int, *, build_html: bool = True, notify_url: str | None = None,
               display: RunProgress | None = None) -> int:
    """Merge the workers' rows into summary.json/summary.md, print the table (coloured by verdict on
    a terminal), build the report. Exit status: pytest's (non-zero if any verification failed), 1
    if no scenario ran."""
    from gameday.report.summary import summarise_run, table_cells

    written = summarise_run(run_dir)
    rows = written.rows
    print()
    if rows and display is not None:
        sys.stdout.flush()
        header, body = table_cells(rows, written.time_scale)
        verdicts = [cells[header.index("verdict")] for cells in body]
        display.print_summary(written.table(), verdicts)
    else:
        print(written.table() if rows else "gameday run: no scenario produced a result")
    print(f"\nsummary: {written.json_path}\n         {written.md_path}")
    if rows:
        add_trends(run_dir, written.md_path)
    if build_html:
        _build_report(run_dir)
    from gameday.errors import run_exit_code

    code = 1 if not rows and pytest_code == 0 else run_exit_code([row.get("failure_category") for row in rows],
                                                                  pytest_code)
    if notify_url:
        import json

        from gameday.report.notify import notify

        payload = json.loads(written.json_path.read_text())
        notify(notify_url, {"run_id": payload.get("run_id"), "exit_code": code,
                            "summary": str(written.json_path.resolve()),
                            "report": str((run_dir / "report.html").resolve()) if build_html else None,
                            "rows": [{k: r.get(k) for k in ("scenario", "failed_region", "verdict", "failure_category",
                                                           "error", "detection_s", "dns_shift_s", "client_outage_s",
                                                           "rpo_lost_writes", "replication_lag_p99_s", "failback_s",
                                                           "aws_equivalent_s")} for r in payload.get("rows", [])]})
    return code


def _build_report(run_dir: Path) -> None:
    from gameday.report.html import ReportToolMissing, build_report

    try:
        html = build_report(run_dir.parent, [run_dir / ALLURE_RESULTS], html_name=f"{run_dir.name}/report.html")
    except ReportToolMissing as exc:
        print(f"report: not built ({exc})")
    except GamedayError as exc:
        print(f"report: not built: {exc}", file=sys.stderr)
    else:
        print(f"report:  {html}")
