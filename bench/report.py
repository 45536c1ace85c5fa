"""Reporting figures: timeline/health chart time for 100k traffic events, and the HTML report build time.

    python bench/report.py            # charts + a report build (needs `npm ci`); skips the build without Node
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gameday.report import charts

REPO = Path(__file__).resolve().parent.parent


def events(n: int, t0: float) -> list[dict]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        t = t0 + i * (60.0 / n)
        region = "eu-west-1" if i % 2 else "us-east-1"
        ok = not (region == "eu-west-1" and 20 < t - t0 < 35 and rng.random() < 0.7)
        out.append({"t_start": t, "t_end": t + 0.01, "op": "put", "ok": ok, "status": 200 if ok else 503,
                    "latency_s": 0.01, "region": region, "item_id": i, "error": None})
    return out


def best_of(fn, repeat: int = 3) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) of `repeat` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def main() -> None:
    t0 = 1_790_000_000.0
    marks = {"fault": t0 + 20, "detected": t0 + 30, "dns_shift": t0 + 35, "restore": t0 + 45, "recovered": t0 + 50}
    ev = events(100_000, t0)
    obs = [{"t": t0 + i * 0.05, "region": r, "failing": 16 if (r == "eu-west-1" and 28 < i * 0.05 < 47) else 0,
            "total": 16} for i in range(1200) for r in ("eu-west-1", "us-east-1")]
    charts.timeline_chart(ev[:100], marks)  # warm fonts
    wall, cpu = best_of(lambda: charts.timeline_chart(ev, marks, time_scale=0.01))
    print(f"timeline chart, 100,000 events: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU (goal < 500 ms)")
    wall, cpu = best_of(lambda: charts.health_chart(obs, marks, time_scale=0.01))
    print(f"health chart, {len(obs):,} observations: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")

    from gameday.report.html import ReportToolMissing, build_report, find_allure
    try:
        find_allure()
    except ReportToolMissing as exc:
        print(f"report build: skipped ({exc})")
        return
    from tests.support.reporting_helpers import run_sample

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        results = base / "reports" / "allure-results"
        run_sample(base / "work", results)
        n_results = len(list(results.glob("*-result.json")))
        times = []
        for _ in range(3):
            w = time.perf_counter()
            html = build_report(base / "reports", [results])
            times.append(time.perf_counter() - w)
        size = html.stat().st_size
    print(f"report build ({n_results} results, single file {size / 1e6:.1f} MB): "
          f"{min(times):.2f} s best of 3 (first {times[0]:.2f} s; history grows each build)")
    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip() if node else "-"
    print(f"(node {version}, allure {_allure_version()})")


def _allure_version() -> str:
    import json
    try:
        return json.loads((REPO / "node_modules" / "allure" / "package.json").read_text())["version"]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
