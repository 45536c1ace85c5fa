"""gameday installed from its wheel, as a CI image installs it: no source tree, no editable
checkout. `gameday run` runs the whole catalog on a fresh embedded local cloud, and `gameday
local up` serves a cloud that an installed `gameday run --deployment` attaches to."""

from __future__ import annotations

import json
import re
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from tests.support.installed_wheel import (
    CONSTRAINTS,
    INSTALLED_GROUP,
    PROJECT_ROOT,
    InstalledGameday,
    installed_gameday,
    stop_group,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(INSTALLED_GROUP)]


@pytest.fixture(scope="session")
def installed() -> Iterator[InstalledGameday]:
    with installed_gameday() as install:
        yield install


def _summary(report_dir: Path) -> tuple[Path, dict]:
    (run_dir,) = [p for p in report_dir.iterdir() if (p / "summary.json").is_file()]
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_wheel_carries_every_file_of_the_package(installed: InstalledGameday) -> None:
    """Templates, handlers, the catalog and its pytest.ini are read from where gameday is installed:
    every file of src/gameday must be in the wheel, data files included."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    package = PROJECT_ROOT / "src"
    source = {p.relative_to(package).as_posix() for p in (package / "gameday").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    for required in ("gameday/infra/regional.yaml", "gameday/infra/functions/health.py",
                     "gameday/catalog/test_region_failover.py", "gameday/catalog/pytest.ini"):
        assert required in source, required  # the check below would pass on an empty tree
    assert not source - names, f"missing from {installed.wheel.name}: {sorted(source - names)}"
    (entry_points_file,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    entry_points = zipfile.ZipFile(installed.wheel).read(entry_points_file).decode()
    assert "gameday = gameday.plugin" in entry_points and "gameday = gameday.cli.main:main" in entry_points


def test_installed_package_is_the_one_imported(installed: InstalledGameday) -> None:
    """The venv's gameday comes from its own site-packages, never from the checkout."""
    cwd = installed.workdir("import")
    done = installed.run("python", "-c", "import gameday, gameday.plugin; print(gameday.__file__)", cwd=cwd,
                         timeout=60)
    assert done.code == 0, done.tail()
    assert Path(done.stdout.strip()).is_relative_to(installed.venv), done.stdout
    plugins = installed.run("pytest", "-V", "-V", cwd=cwd, timeout=60)  # twice: with the registered plugins
    registered = [line for line in plugins.stdout.splitlines() if line.strip().startswith("gameday-")]
    assert registered and str(installed.venv) in registered[0], plugins.tail()


def test_every_installed_package_is_pinned_by_the_constraints(installed: InstalledGameday) -> None:
    """A new dependency (or one of its own) that constraints.txt does not pin would make CI's
    install drift with every release: list it there."""
    cwd = installed.workdir("freeze")
    done = installed.run("python", "-m", "pip", "freeze", "--exclude", "gameday", cwd=cwd, timeout=120)
    assert done.code == 0, done.tail()
    installed_pins = {_canonical(line) for line in done.stdout.splitlines() if "==" in line}
    pinned = {_canonical(line) for line in CONSTRAINTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert installed_pins <= pinned, sorted(installed_pins - pinned)


def _canonical(pin: str) -> str:
    name, _, version = pin.strip().partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def test_gameday_run_runs_the_whole_catalog_from_an_installed_wheel(installed: InstalledGameday) -> None:
    cwd = installed.workdir("run")
    done = installed.run("gameday", "run", "--report-dir", "reports", cwd=cwd, timeout=1200)
    assert done.code == 0, done.tail()
    assert str(PROJECT_ROOT) not in done.stdout + done.stderr, "the installed gameday points into the checkout"

    run_dir, summary = _summary(cwd / "reports")
    rows = summary["rows"]
    assert rows and all(row["verdict"] == "pass" for row in rows), [(r["scenario"], r.get("error")) for r in rows]

    # Every catalog module that shipped in the wheel produced a passed test in the Allure results.
    catalog = next(installed.venv.glob("lib/python*/site-packages/gameday/catalog"))
    modules = {p.stem for p in catalog.glob("test_*.py")}
    results = [json.loads(p.read_text()) for p in (run_dir / "allure-results").glob("*-result.json")]
    reported = {r["fullName"].split("#")[0].rsplit(".", 1)[-1] for r in results}
    assert reported == modules, (reported, modules)
    # Every game day passed but the RPO-0 one, which needs a strongly consistent table (the default
    # cloud's is eventual) and says so as it skips.
    others = [(r["name"], r["status"], (r.get("statusDetails") or {}).get("message", "")) for r in results
              if r["status"] != "passed"]
    assert others and all(name.startswith("test_strong_consistency_rpo_zero") and status == "skipped"
                          and "MultiRegionConsistency STRONG" in message for name, status, message in others), others
    assert {r["scenario"] for r in rows} <= {r["name"].split(":")[0] for r in results}
    assert (run_dir / "allure-results" / "environment.properties").is_file()

    # Nothing of the run lands inside the installed package.
    written = [p for p in catalog.rglob("*") if "__pycache__" not in p.parts and p.suffix != ".pyc"
               and p.name not in {"pytest.ini", "__init__.py"} and not p.name.startswith("test_")]
    assert not written, written


def test_gameday_local_up_from_an_installed_wheel_serves_a_run_and_stops_on_ctrl_c(
        installed: InstalledGameday) -> None:
    cwd = installed.workdir("local-up")
    description = cwd / "deployment.yaml"
    proc = installed.popen("gameday", "local", "up", "--port", "0", "--aws-port", "0", "--dns-port", "0",
                           "--address-prefix", "random", "--deployment-out", str(description), cwd=cwd)
    try:
        Retrying(stop=stop_after_delay(120), wait=wait_fixed(0.1), retry=retry_if_result(lambda up: not up),
                 reraise=True)(lambda: description.is_file() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        described = yaml.safe_load(description.read_text())
        assert described["target"] == "local" and described["control_url"], described

        # The installed `gameday run` attaches to the description that `local up` wrote.
        attached = installed.run("gameday", "run", "--deployment", str(description), "-k", "region_failover",
                                 "--report-dir", "reports", "--no-html", cwd=cwd, timeout=600)
        assert attached.code == 0, attached.tail()
        _, summary = _summary(cwd / "reports")
        rows = summary["rows"]
        assert sorted(r["failed_region"] for r in rows) == sorted(r["name"] for r in described["regions"])
        assert all(r["verdict"] == "pass" for r in rows), [(r["failed_region"], r.get("error")) for r in rows]

        proc.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr[-3000:]
        assert described["aws_endpoint_url"] in stdout and "stopping" in stdout, stdout
    finally:
        stop_group(proc)
