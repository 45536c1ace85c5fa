"""gameday's fixed start-up cost: what a run pays before its first game day starts.

    python -m bench.startup [--runs 7] [--no-breakdown]

Prints, each the median of --runs fresh processes (wall time, and CPU time user+sys, which a
busy machine inflates less than wall time):
 (a) `gameday run -k nothing-matches --no-html --report-dir <tmp>`: nothing collected, so no
     local cloud, no report; only the command, pytest, the plugins and the catalog's imports.
     Goal: under 0.4 s.
 (b) `pytest --collect-only -q` of the shipped catalog with its pytest.ini, twice: with every
     plugin the environment autoloads (what plain pytest pays) and with the plugins `gameday run`
     loads for the catalog (gameday, allure).
 (c) import time of `gameday.plugin` (what every pytest run in an environment with gameday
     installed pays), of `gameday` and of the command's module, from `python -X importtime`.
 (e) the same run as (a) over a stand-in catalog of light game-day modules (two tests asking for
     `gameday` and `failed_region`, importing nothing else): the command's, pytest's and the
     plugins' share of (a), i.e. what (a) would cost if the catalog's imports were deferred.
 (d) unless --no-breakdown: the modules the catalog's collection imports, heaviest first
     (cumulative import time, one collection with `-X importtime`).
Bytecode: an installed wheel has its modules compiled, but a checkout run with
PYTHONDONTWRITEBYTECODE=1 compiles every gameday module (and the catalog) on every start. So by
default the bench lets Python cache bytecode under a temporary PYTHONPYCACHEPREFIX (nothing is
written into the tree) and warms it with one uncounted run; --as-configured measures the
environment as it is.
Figures are noisy on a shared machine: compare medians taken side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

GOAL_S = 0.4
CATALOG = Path(str(files("gameday.catalog")))
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def gameday_command() -> list[str]:
    """The console script next to this interpreter (what a user types), else the module."""
    script = Path(sys.executable).parent / "gameday"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gameday.cli.main"]


ENV: dict[str, str] = dict(os.environ)


def timed(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(median wall s, median CPU s) of `runs` fresh runs of cmd, after one uncounted warm-up run."""
    env = {**ENV, **(env or {})}
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300, check=False)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def import_times(stderr: str) -> list[tuple[int, int, str]]:
    """(cumulative us, depth, module) for each line `python -X importtime` wrote."""
    rows = []
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            rows.append((int(m[2]), (len(m[3]) - 1) // 2, m[4]))
    return rows


def import_cost(module: str, runs: int) -> float:
    """Median cumulative import time of `module` in a fresh interpreter, in seconds."""
    costs = []
    for _ in range(runs + 1):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                              capture_output=True, text=True, timeout=120, check=True, env=ENV)
        costs.append(next(us for us, depth, name in import_times(proc.stderr) if name == module and depth == 0))
    return statistics.median(costs[1:]) / 1e6


def collect_cmd() -> list[str]:
    return [sys.executable, "-m", "pytest", "--collect-only", "-q", "-c", str(CATALOG / "pytest.ini"),
            "--rootdir", str(CATALOG.parents[1]), str(CATALOG)]


LIGHT_CATALOG = '''
import pytest


@pytest.mark.failover
@pytest.mark.destructive
def test_light_failover(gameday, failed_region):
    pass


def test_light_other(gameday):
    pass
'''


def light_catalog_run(tmp: Path) -> list[str]:
    """Figure (e)'s command: `gameday run` with the catalog swapped for LIGHT_CATALOG."""
    catalog = tmp / "site" / "gameday_light" / "catalog"
    catalog.mkdir(parents=True)
    (catalog / "test_light.py").write_text(LIGHT_CATALOG)
    shutil.copy(CATALOG / "pytest.ini", catalog / "pytest.ini")
    code = ("import sys; from pathlib import Path; import gameday.cli.run as run; "
            f"run.catalog_dir = lambda: Path({str(catalog)!r}); "
            "from gameday.cli.main import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, "run", "-k", "nothing-matches", "--no-html", "--report-dir", str(tmp / "r")]


def breakdown(limit: int = 15) -> list[tuple[float, str]]:
    """The heaviest modules a catalog collection imports (outside pytest's own start), with -s so
    that pytest's capture does not swallow the importtime lines written during collection."""
    env = {**ENV, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-X", "importtime", "-m", "pytest", "-s", "-p", "gameday.plugin",
           "-p", "allure_pytest.plugin", *collect_cmd()[3:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    rows = import_times(proc.stderr)
    # depth 0 and 1 below the catalog modules' own imports; pytest's start-up is figure (b)'s floor
    interesting = [(us / 1e6, name) for us, depth, name in rows
                   if depth <= 1 and not name.startswith(("_pytest", "pytest", "pluggy", "encodings", "site"))]
    return sorted(interesting, reverse=True)[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--as-configured", action="store_true",
                        help="keep the environment's bytecode settings (e.g. PYTHONDONTWRITEBYTECODE)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gameday-bench-pycache-") as cache:
        if not args.as_configured:
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = cache
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    bytecode = "as configured" if args.as_configured else "bytecode cached"
    print(f"gameday start-up, median of {args.runs} runs, {bytecode} (load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs)")
    floor = timed([sys.executable, "-c", "pass"], args.runs)
    print(f"  interpreter alone (python -c pass)          wall {floor[0]:.3f} s  cpu {floor[1]:.3f} s")
    with tempfile.TemporaryDirectory(prefix="gameday-bench-startup-") as tmp:
        run = [*gameday_command(), "run", "-k", "nothing-matches", "--no-html", "--report-dir", tmp]
        wall, cpu = timed(run, args.runs)
        verdict = "met" if wall < GOAL_S else "NOT met"
        print(f"  (a) gameday run -k nothing-matches          wall {wall:.3f} s  cpu {cpu:.3f} s  "
              f"(goal {GOAL_S} s: {verdict})")
        wall, cpu = timed(light_catalog_run(Path(tmp)), args.runs)
        print(f"  (e) the same over a light stand-in catalog  wall {wall:.3f} s  cpu {cpu:.3f} s")
    wall, cpu = timed(collect_cmd(), args.runs)
    print(f"  (b) pytest --collect-only, env plugins      wall {wall:.3f} s  cpu {cpu:.3f} s")
    own = [*collect_cmd(), "-p", "gameday.plugin", "-p", "allure_pytest.plugin"]
    wall, cpu = timed(own, args.runs, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    print(f"      pytest --collect-only, gameday's        wall {wall:.3f} s  cpu {cpu:.3f} s")
    for module in ("gameday.plugin", "pytest", "gameday", "gameday.cli.main"):
        print(f"  (c) import {module:<32} {import_cost(module, args.runs):.3f} s")
    if not args.no_breakdown:
        print("  (d) heaviest imports of a catalog collection (cumulative):")
        for seconds, name in breakdown():
            print(f"        {seconds:7.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
