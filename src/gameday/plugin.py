"""pytest wiring for game days: options, markers, fixtures, xdist grouping. No logic here.

Options (settings precedence: command line > environment > default):
  --deployment FILE   attach to this deployment (default: start an embedded local cloud per worker)
  --fail-region R     fail only region R (default: every region, one scenario run each)
  --time-scale X      time scale of the embedded local cloud (default 0.01)
  --run-dir DIR       where rows, journal and evidence go (gameday run sets it)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

DEFAULT_REGIONS = ["eu-west-1", "us-east-1"]
SHARED_DEPLOYMENT_GROUP = "shared-deployment"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gameday", "game days")
    group.addoption("--deployment", metavar="FILE", default=os.environ.get("GAMEDAY_DEPLOYMENT"),
                    help="deployment description to attach to (default: start an embedded local cloud)")
    group.addoption("--fail-region", metavar="REGION", default=None, help="fail only this region")
    group.addoption("--time-scale", type=float, metavar="X", default=None,
                    help="time scale of the embedded local cloud (default 0.01)")
    group.addoption("--run-dir", metavar="DIR", default=os.environ.get("GAMEDAY_RUN_DIR"),
                    help="run output directory (default: reports/<run-id>)")
    # game days under load (harness/under_load.py); each also reads an environment variable
    group.addoption("--load-acked-writes", metavar="N", default=None,
                    help="under load: keep going after recovery until N writes were acknowledged "
                         "(env GAMEDAY_LOAD_ACKED_WRITES, default 1000)")
    group.addoption("--load-rate", metavar="RPS", default=None,
                    help="under load: requests per second (env GAMEDAY_LOAD_RATE, default 120)")
    group.addoption("--load-write-ratio", metavar="SHARE", default=None,
                    help="under load: share of writes (env GAMEDAY_LOAD_WRITE_RATIO, default 0.8)")
    group.addoption("--slo", metavar="NAME=MAX", action="append", default=None,
                    help="an SLO over the deployment file's, AWS-equivalent seconds for *_s figures; repeatable "
                         "(env GAMEDAY_SLO=\"a=1,b=2\")")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "failover: a game day that fails a region and checks that traffic moves",
        "destructive: injects a fault into a deployment (never two at once on one deployment)",
        "local_only: needs the embedded local cloud (ground truth, replication faults)",
    ):
        config.addinivalue_line("markers", line)


def _deployment_regions(config: pytest.Config) -> list[str]:
    """Region names known at collection time, for parametrising over the failed region."""
    path = config.getoption("--deployment")
    if not path:
        return DEFAULT_REGIONS
    from gameday.deployment import load_deployment

    return [region.name for region in load_deployment(path).regions]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "failed_region" in metafunc.fixturenames:
        regions = _deployment_regions(metafunc.config)
        only = metafunc.config.getoption("--fail-region")
        if only:
            if only not in regions:
                raise pytest.UsageError(f"--fail-region: {only!r} is not a region of the deployment ({', '.join(regions)})")
            regions = [only]
        metafunc.parametrize("failed_region", regions, ids=regions)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads xdist_group into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against one shared deployment, destructive scenarios go to one xdist worker (run
    with --dist loadgroup), so two faults never overlap. Local clouds are per worker."""
    if not config.getoption("--deployment"):
        return
    for item in items:
        if item.get_closest_marker("destructive"):
            item.add_marker(pytest.mark.xdist_group(SHARED_DEPLOYMENT_GROUP))
        if item.get_closest_marker("local_only") and not _deployment_is_local(config):
            item.add_marker(pytest.mark.skip(reason="needs the embedded local cloud (run without --deployment, "
                                                    "or with a local cloud's description)"))


def _deployment_is_local(config: pytest.Config) -> bool:
    """A description of a local cloud (target local, with a control endpoint) can take local-only faults."""
    from gameday.deployment import load_deployment

    dep = load_deployment(config.getoption("--deployment"))
    return dep.target == "local" and bool(dep.control_url)


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    configured = pytestconfig.getoption("--run-dir")
    if configured:
        path = Path(configured)
    else:
        from gameday.cli.main import new_run_id

        path = Path("reports") / new_run_id()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def deployment_file(pytestconfig: pytest.Config) -> Iterator[tuple[Path, Any]]:
    """(description path, LocalCloud or None). A local cloud lives for the worker's session."""
    path = pytestconfig.getoption("--deployment")
    if path:
        yield Path(path), None
        return
    from gameday.localcloud.process.launcher import LocalCloud

    scale = pytestconfig.getoption("--time-scale") or 0.01
    with LocalCloud(time_scale=scale) as cloud:
        yield cloud.deployment_path, cloud


@pytest.fixture(scope="session")
def gameday(request: pytest.FixtureRequest, deployment_file: tuple[Path, Any], run_dir: Path) -> Iterator[Any]:
    """Everything a scenario needs: deployment, clients, probes, resolver, journal, rows."""
    from gameday.gamedays.session import GamedaySession, Progress

    path, cloud = deployment_file
    session = GamedaySession.open(path, run_dir=run_dir, local_cloud=cloud,
                                  progress=Progress(write=_terminal_writer(request.config)))
    shutil.copyfile(path, run_dir / "deployment.yaml")
    alluredir = request.config.getoption("--alluredir", default=None)
    if alluredir:
        _write_allure_run_files(Path(alluredir), session)
    try:
        yield session
    finally:
        session.close()


def _terminal_writer(config: pytest.Config) -> Any:
    """Progress lines reach the terminal even while pytest captures output (fd-level)."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        if capman is None:
            print(line, flush=True)
            return
        with capman.global_and_fixture_disabled():
            print(line, file=sys.stderr, flush=True)

    return write


def _write_allure_run_files(alluredir: Path, session: Any) -> None:
    """environment.properties and categories.json (idempotent: every worker may write them)."""
    import yaml

    from gameday.report import allure as reporting

    described = yaml.safe_load(session.deployment_path.read_text()) or {}
    config = session.health.health_check_config(session.deployment.regions[0].health_check_id)
    props = reporting.environment_properties(described, health_check_interval_s=config.get("RequestInterval", 30),
                                             failure_threshold=config.get("FailureThreshold", 3))
    reporting.write_environment(alluredir, props)
    reporting.write_categories(alluredir)


@pytest.fixture(scope="session")
def load_settings(pytestconfig: pytest.Config) -> Any:
    """Traffic settings of the game days under load (command line > environment > default)."""
    from gameday.gamedays.under_load import LoadSettings

    return LoadSettings.from_sources({"acked_writes": pytestconfig.getoption("--load-acked-writes"),
                                      "rate": pytestconfig.getoption("--load-rate"),
                                      "write_ratio": pytestconfig.getoption("--load-write-ratio")})


@pytest.fixture(scope="session")
def slo_overrides(pytestconfig: pytest.Config) -> dict[str, float]:
    from gameday.gamedays.under_load import slo_overrides as parse

    return parse(pytestconfig.getoption("--slo"))


@pytest.fixture(scope="session")
def gameday_for_routing(pytestconfig: pytest.Config, gameday: Any, run_dir: Path) -> Iterator[Any]:
    """routing -> a GamedaySession on a deployment with that routing: the main one if it has it, else
    (embedded cloud only) a second local cloud started on first use, else the test is skipped."""
    from contextlib import ExitStack

    from gameday.gamedays.session import GamedaySession

    sessions: dict[str, Any] = {gameday.deployment.routing: gameday}
    with ExitStack() as stack:
        def get(routing: str) -> Any:
            if routing in sessions:
                return sessions[routing]
            if pytestconfig.getoption("--deployment"):
                pytest.skip(f"needs a {routing}-routed deployment; {gameday.deployment_path} routes by "
                            f"{gameday.deployment.routing} (run without --deployment to use embedded local clouds)")
            from gameday.localcloud.process.launcher import LocalCloud

            gameday.progress.say(f"starting a second local cloud with {routing} routing")
            scale = pytestconfig.getoption("--time-scale") or 0.01
            cloud = stack.enter_context(LocalCloud(time_scale=scale, routing=routing))
            sessions[routing] = GamedaySession.open(cloud.deployment_path, run_dir=run_dir, local_cloud=cloud,
                                                    progress=gameday.progress)
            return sessions[routing]

        yield get


@pytest.fixture
def latency_gameday(gameday_for_routing: Any) -> Any:
    """A GamedaySession on a latency-routed deployment (see gameday_for_routing)."""
    return gameday_for_routing("latency")
