"""`gameday run` around pytest: the pytest arguments, then the summary and the report."""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from gameday.errors import GamedayError

ALLURE_RESULTS = "allure-results"


def catalog_dir() -> Path:
    """The game-day catalog shipped with gameday (package data, read where it is installed)."""
    return Path(str(files("gameday.catalog")))


def pytest_args_for_run(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The catalog (unless --no-catalog) and every --scenarios folder, with the catalog's settings.
    The root is the folder that holds the gameday package, so the catalog's node ids (and the
    Allure history keyed by them) are the same wherever gameday is installed."""
    catalog = catalog_dir()
    paths = [] if getattr(args, "no_catalog", False) else [str(catalog)]
    paths += [str(Path(folder).resolve()) for folder in getattr(args, "scenarios", None) or []]
    argv = [*paths, "--rootdir", str(catalog.parents[1]), "-c", str(catalog / "pytest.ini"),
            "-p", "no:cacheprovider", "--run-dir", str(run_dir),
            "--alluredir", str(run_dir / ALLURE_RESULTS), "-q", "-rfE"]
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
    for option in ("load_acked_writes", "load_rate", "load_write_ratio"):
        value = getattr(args, option, None)
        if value is not None:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    for slo in getattr(args, "slo", None) or []:
        argv += ["--slo", slo]
    return argv


def latest_run_dir(report_dir: Path) -> Path | None:
    runs = [p for p in report_dir.iterdir() if p.is_dir() and (p / ALLURE_RESULTS).is_dir()] if report_dir.is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def deployment_summary(rows: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """The non-secret deployment facts for summary.json (from the description the run used)."""
    path = run_dir / "deployment.yaml"
    if path.exists():
        import yaml

        return yaml.safe_load(path.read_text()) or {}
    return {}


def finish_run(run_dir: Path, pytest_code: int, *, build_html: bool = True) -> int:
    """Merge the workers' rows into summary.json/summary.md, print the table, build the report.
    Exit status: pytest's (non-zero if any verification failed), 1 if no scenario ran."""
    from gameday.gamedays.session import read_rows
    from gameday.report.summary import render_terminal, write_summary

    rows = read_rows(run_dir)
    deployment = deployment_summary(rows, run_dir)
    scale = float(deployment.get("time_scale") or 1.0)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_dir.stat().st_mtime))
    json_path, md_path = write_summary(run_dir, run_dir.name, started, deployment, rows, time_scale=scale)
    print()
    if rows:
        print(render_terminal(rows, scale))
    else:
        print("gameday run: no scenario produced a result")
    print(f"\nsummary: {json_path}\n         {md_path}")
    if build_html:
        _build_report(run_dir)
    if not rows and pytest_code == 0:
        return 1
    return pytest_code


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
