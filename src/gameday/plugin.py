"""pytest wiring for game days: options, markers, fixtures, xdist grouping. No game-day logic here.

The plugin is loaded into every pytest run of an environment where gameday is installed (the
`pytest11` entry point), including runs that have nothing to do with game days. So it stays
inert until a test asks for a game-day fixture: module level imports nothing but pytest, the
environment is read only when a game-day fixture or hook needs a setting, and the collection
hooks touch only items that use a game-day fixture.

Settings, each from the command line, else the environment, else a default:
  --deployment FILE   GAMEDAY_DEPLOYMENT   attach to this deployment (default: an embedded local cloud per worker)
  --fail-region R     GAMEDAY_FAIL_REGION  fail only region R (default: every region, one scenario run each)
  --time-scale X      GAMEDAY_TIME_SCALE   time scale of the embedded local cloud (default 0.01)
  --local-regions L   GAMEDAY_LOCAL_REGIONS  the embedded local cloud's regions (default eu-west-1,us-east-1)
  --local-routing R   GAMEDAY_LOCAL_ROUTING  its routing (default failover for 2 regions, latency for more)
  --local-consistency C  GAMEDAY_LOCAL_CONSISTENCY  its global table's consistency: eventual (default) or strong
  --local-witness R   GAMEDAY_LOCAL_WITNESS  with strong and 2 regions: the witness region (no replica)
  --local-pairs P     GAMEDAY_LOCAL_PAIRS  with routing failover_pairs: each region's partner, R:P,...
  --run-dir DIR       GAMEDAY_RUN_DIR      where rows, journal and evidence go (default reports/<run id>)
A bad value is reported with the place it came from (the option or the variable).

Progress (--gameday-progress): under plain pytest, one line per phase of each game day on the
terminal (-v: one per wait too; -q: only each game day's verdict), written by the process that
runs it (under `pytest -n`, each worker on its own stderr). `gameday run` asks for events instead:
every process appends them to the run folder and the command's one display shows them.
GAMEDAY_QUIET=1 silences both.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gameday.deployment import Deployment
    from gameday.gamedays.session import GamedaySession

DEFAULT_REGIONS = ("eu-west-1", "us-east-1")  # the embedded local cloud's regions
DEFAULT_TIME_SCALE = 0.01
SHARED_DEPLOYMENT_GROUP = "shared-deployment"

#: A test that asks for one of these is a game day; the plugin's hooks leave every other test alone.
GAMEDAY_FIXTURES = frozenset({"gameday", "failed_region", "latency_gameday", "gameday_for_routing",
                              "deployment_file", "load_settings", "slo_overrides"})
MARKERS = {
    "failover": "a game day that fails a region and checks that traffic moves",
    "destructive": "injects a fault into a deployment (never two at once on one deployment)",
    "local_only": "needs the embedded local cloud (ground truth, replication faults)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    # No defaults from the environment here: options are parsed for every pytest run, and a
    # variable meant for game days must not change how unrelated tests are collected.
    group = parser.getgroup("gameday", "game days")
    group.addoption("--deployment", metavar="FILE", default=None,
                    help="deployment description to attach to (env GAMEDAY_DEPLOYMENT; "
                         "default: start an embedded local cloud)")
    group.addoption("--fail-region", metavar="REGION", default=None,
                    help="fail only this region (env GAMEDAY_FAIL_REGION; default: each region in turn)")
    group.addoption("--time-scale", metavar="X", default=None,
                    help=f"time scale of the embedded local cloud (env GAMEDAY_TIME_SCALE; default {DEFAULT_TIME_SCALE})")
    group.addoption("--local-regions", metavar="R1,R2[,...]", default=None,
                    help="regions of the embedded local cloud (env GAMEDAY_LOCAL_REGIONS; default "
                         f"{','.join(DEFAULT_REGIONS)})")
    group.addoption("--local-routing", metavar="failover|latency|failover_pairs", default=None,
                    help="routing of the embedded local cloud (env GAMEDAY_LOCAL_ROUTING; default failover "
                         "for two regions, latency for more; failover_pairs: latency records over a failover "
                         "pair per region)")
    group.addoption("--local-pairs", metavar="R:P,...", default=None,
                    help="with --local-routing failover_pairs: each region's failover partner (env "
                         "GAMEDAY_LOCAL_PAIRS; default the next region, the last's the first)")
    group.addoption("--local-consistency", metavar="eventual|strong", default=None,
                    help="global table consistency of the embedded local cloud (env GAMEDAY_LOCAL_CONSISTENCY; "
                         "default eventual); strong: multi-Region strong consistency, exactly 3 regions of one "
                         "region set (3 --local-regions, or 2 and --local-witness)")
    group.addoption("--local-witness", metavar="REGION", default=None,
                    help="with --local-consistency strong and 2 regions: the witness region, which holds no "
                         "replica (env GAMEDAY_LOCAL_WITNESS)")
    group.addoption("--run-dir", metavar="DIR", default=None,
                    help="run output directory (env GAMEDAY_RUN_DIR; default: reports/<run-id>)")
    group.addoption("--gameday-progress", choices=("lines", "events", "off"), default="lines",
                    help="progress of running game days: plain lines on the terminal, one per phase (-v: one "
                         "per wait too); events: JSON lines in the run folder, for `gameday run`'s display")
    group.addoption("--no-gameday-summary", action="store_true", default=False,
                    help="do not write summary.json/summary.md when the session ends (`gameday run` writes "
                         "its own, with the HTML report)")
    # game days under load; each also reads an environment variable (read by LoadSettings)
    group.addoption("--load-acked-writes", metavar="N", default=None,
                    help="under load: keep going after recovery until N writes were acknowledged "
                         "(env GAMEDAY_LOAD_ACKED_WRITES, default 1000)")
    group.addoption("--load-rate", metavar="RPS", default=None,
                    help="under load: requests per second (env GAMEDAY_LOAD_RATE, default 60)")
    group.addoption("--load-write-ratio", metavar="SHARE", default=None,
                    help="under load: share of writes (env GAMEDAY_LOAD_WRITE_RATIO, default 0.8)")
    group.addoption("--slo", metavar="NAME=MAX", action="append", default=None,
                    help="an SLO over the deployment file's, AWS-equivalent seconds for *_s figures; repeatable "
                         "(env GAMEDAY_SLO=\"a=1,b=2\")")


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


# -- settings: command line > environment > default, resolved on first use ------------------

@dataclass(frozen=True)
class Setting:
    """A resolved setting and where it came from, so that an error can name the source."""

    value: Any
    source: str  # "--deployment", "GAMEDAY_DEPLOYMENT" or "default"


@dataclass(frozen=True)
class Settings:
    deployment: Setting
    fail_region: Setting
    time_scale: Setting
    run_dir: Setting
    local_regions: Setting      # tuple of region names
    local_routing: Setting      # "failover" | "latency"
    local_consistency: Setting  # "EVENTUAL" | "STRONG"
    local_witness: Setting      # a region name or None
    local_pairs: Setting = Setting(None, "default")   # "R:P,..." text (failover_pairs), checked


_SETTINGS_KEY = pytest.StashKey[Settings]()
_DEPLOYMENT_KEY = pytest.StashKey["Deployment"]()


def _raw(config: pytest.Config, option: str, env: str, default: Any = None) -> Setting:
    value = config.getoption(option)
    if value is not None:
        return Setting(value, option)
    from_env = os.environ.get(env)
    if from_env:
        return Setting(from_env, env)
    return Setting(default, "default")


def _time_scale(setting: Setting) -> Setting:
    try:
        scale = float(setting.value)
        if not 0 < scale <= 1:
            raise ValueError
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{setting.source}: expected a number in (0, 1], got {setting.value!r}") from None
    return Setting(scale, setting.source)


def _local_layout(regions: Setting, routing: Setting) -> tuple[Setting, Setting]:
    from gameday.deployment import embedded_layout
    from gameday.errors import UsageError

    try:
        names, chosen = embedded_layout(regions.value, routing.value, regions_source=regions.source,
                                        routing_source=routing.source)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Setting(names, regions.source), Setting(chosen, routing.source)


def _local_pairs(pairs: Setting, regions: Setting, routing: Setting) -> Setting:
    """The embedded cloud's failover pairs ("R:P,..."), checked against its regions and routing."""
    from gameday.deployment import FAILOVER_PAIRS, failover_pairs
    from gameday.errors import UsageError

    if pairs.value is None:
        return pairs
    if routing.value != FAILOVER_PAIRS:
        raise pytest.UsageError(f"{pairs.source}: only with --local-routing {FAILOVER_PAIRS}, not {routing.value}")
    try:
        failover_pairs(pairs.value, regions.value, source=pairs.source)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    return pairs


def _local_consistency(consistency: Setting, witness: Setting, regions: Setting) -> tuple[Setting, Setting]:
    """The embedded cloud's table consistency and witness, checked with its regions. An error names
    where each came from, or the option to set when it was the default."""
    from gameday.deployment import consistency_layout
    from gameday.errors import UsageError

    def named(setting: Setting, option: str) -> str:
        return option if setting.source == "default" else setting.source

    try:
        chosen, witness_name, _ = consistency_layout(
            consistency.value, witness.value, regions.value,
            consistency_source=named(consistency, "--local-consistency"), witness_source=witness.source,
            regions_source=named(regions, "--local-regions"))
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Setting(chosen, consistency.source), Setting(witness_name, witness.source)


def settings(config: pytest.Config) -> Settings:
    """The game-day settings of this run, read (and checked) once, when first needed."""
    if _SETTINGS_KEY not in config.stash:
        layout = _local_layout(_raw(config, "--local-regions", "GAMEDAY_LOCAL_REGIONS"),
                               _raw(config, "--local-routing", "GAMEDAY_LOCAL_ROUTING"))
        consistency = _local_consistency(_raw(config, "--local-consistency", "GAMEDAY_LOCAL_CONSISTENCY"),
                                         _raw(config, "--local-witness", "GAMEDAY_LOCAL_WITNESS"), layout[0])
        config.stash[_SETTINGS_KEY] = Settings(
            deployment=_raw(config, "--deployment", "GAMEDAY_DEPLOYMENT"),
            fail_region=_raw(config, "--fail-region", "GAMEDAY_FAIL_REGION"),
            time_scale=_time_scale(_raw(config, "--time-scale", "GAMEDAY_TIME_SCALE", DEFAULT_TIME_SCALE)),
            run_dir=_raw(config, "--run-dir", "GAMEDAY_RUN_DIR"),
            local_regions=layout[0],
            local_routing=layout[1],
            local_consistency=consistency[0],
            local_witness=consistency[1],
            local_pairs=_local_pairs(_raw(config, "--local-pairs", "GAMEDAY_LOCAL_PAIRS"), *layout),
        )
    return config.stash[_SETTINGS_KEY]


def attached_deployment(config: pytest.Config) -> Deployment | None:
    """The deployment description named by --deployment / GAMEDAY_DEPLOYMENT, loaded once; None
    when the run starts its own local cloud."""
    chosen = settings(config).deployment
    if chosen.value is None:
        return None
    if _DEPLOYMENT_KEY not in config.stash:
        from gameday.deployment import load_deployment
        from gameday.errors import GamedayError

        try:
            config.stash[_DEPLOYMENT_KEY] = load_deployment(chosen.value)
        except (GamedayError, OSError) as exc:
            raise pytest.UsageError(f"{chosen.source}: {exc}") from None
    return config.stash[_DEPLOYMENT_KEY]


def failed_regions(config: pytest.Config) -> list[str]:
    """The regions a failover game day is run for: every region of the deployment, or the one chosen."""
    deployment = attached_deployment(config)
    regions = [region.name for region in deployment.regions] if deployment else list(
        settings(config).local_regions.value)
    only = settings(config).fail_region
    if only.value is None:
        return regions
    if only.value not in regions:
        raise pytest.UsageError(f"{only.source}: {only.value!r} is not a region of the deployment "
                                f"({', '.join(regions)})")
    return [only.value]


# -- collection ---------------------------------------------------------------------------------

def is_gameday_item(item: pytest.Item) -> bool:
    return not GAMEDAY_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only when a test asks for failed_region itself; a fixture of the same name from a
    # team's conftest would be their own business, but parametrising over it is ours.
    if "failed_region" in metafunc.fixturenames:
        regions = failed_regions(metafunc.config)
        metafunc.parametrize("failed_region", regions, ids=regions)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads xdist_group into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against one shared deployment, destructive game days go to one xdist worker (run with
    --dist loadgroup), so two faults never overlap; local clouds are per worker. Local-only game
    days are skipped against a deployment that is not a local cloud."""
    gamedays = [item for item in items if is_gameday_item(item)]
    if not gamedays:
        return
    deployment = attached_deployment(config)
    if deployment is None:
        return
    is_local = deployment.target == "local" and bool(deployment.control_url)
    grouping = _xdist_active(config)
    for item in gamedays:
        if grouping and item.get_closest_marker("destructive"):
            item.add_marker(pytest.mark.xdist_group(SHARED_DEPLOYMENT_GROUP))
        if item.get_closest_marker("local_only") and not is_local:
            item.add_marker(pytest.mark.skip(reason="needs the embedded local cloud (run without --deployment, "
                                                    "or with a local cloud's description)"))


def _xdist_active(config: pytest.Config) -> bool:
    """xdist_group is xdist's marker: without xdist (nothing runs in parallel) there is nothing to group,
    and under --strict-markers the marker would not even exist. The plugin's name depends on how it
    was loaded (entry point or `-p xdist.plugin`)."""
    return any(config.pluginmanager.hasplugin(name) for name in ("xdist", "xdist.plugin"))


# -- fixtures -----------------------------------------------------------------------------------

def new_run_id() -> str:
    """Sortable by start time, unique across workers and machines starting in the same second."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


_RUN_DIR_KEY = pytest.StashKey[Path]()
_WORKER_RUN_DIR = "gameday_run_dir"


def chosen_run_dir(config: pytest.Config) -> Path:
    """The run's folder: --run-dir / GAMEDAY_RUN_DIR, else the one the xdist controller chose and
    handed to its workers, else reports/<new run id> (chosen once per process)."""
    if _RUN_DIR_KEY not in config.stash:
        configured = settings(config).run_dir.value
        handed = getattr(config, "workerinput", {}).get(_WORKER_RUN_DIR)
        config.stash[_RUN_DIR_KEY] = Path(configured or handed or Path("reports") / new_run_id())
    return config.stash[_RUN_DIR_KEY]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker writes its rows into the controller's run folder, so one run has one folder."""
    node.workerinput[_WORKER_RUN_DIR] = str(chosen_run_dir(node.config))


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    """Where the run's rows, journal and evidence go (shared by the workers of one run)."""
    path = chosen_run_dir(pytestconfig)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under plain pytest, the controller merges the workers' rows into summary.json and summary.md
    (as `gameday run` does), so a team's own game days leave the same record as the catalog's."""
    config = session.config
    if hasattr(config, "workerinput") or config.getoption("--no-gameday-summary") \
            or _RUN_DIR_KEY not in config.stash:
        return
    from gameday.records import ROWS_DIR

    run_dir = config.stash[_RUN_DIR_KEY]
    if not (run_dir / ROWS_DIR).is_dir():   # no game day ran: nothing to summarise, nothing heavy to import
        return
    from gameday.report.summary import summarise_run

    written = summarise_run(run_dir)
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None and written.rows:
        reporter.write_sep("-", "game days")
        reporter.write_line(written.table())
        reporter.write_line(f"summary: {written.json_path}")
        reporter.write_line(f"         {written.md_path}")


@pytest.fixture(scope="session")
def deployment_file(pytestconfig: pytest.Config) -> Iterator[tuple[Path, Any]]:
    """(description path, LocalCloud or None). A local cloud lives for the worker's session, and
    is started only when a game day that needs a deployment actually runs."""
    chosen = settings(pytestconfig)
    if chosen.deployment.value is not None:
        attached_deployment(pytestconfig)  # a bad description fails here, naming its source
        yield Path(chosen.deployment.value), None
        return
    from gameday.localcloud.process.launcher import LocalCloud

    with LocalCloud(time_scale=chosen.time_scale.value, regions=list(chosen.local_regions.value),
                    routing=chosen.local_routing.value, consistency=chosen.local_consistency.value,
                    witness=chosen.local_witness.value, pairs=chosen.local_pairs.value) as cloud:
        yield cloud.deployment_path, cloud


@pytest.fixture(scope="session")
def gameday(request: pytest.FixtureRequest, deployment_file: tuple[Path, Any], run_dir: Path,
            slo_overrides: dict[str, float]) -> Iterator[Any]:
    """Everything a game day needs: deployment, clients, probes, resolver, journal, rows, and the
    SLOs it is judged by (the file's, with --slo on top)."""
    import shutil

    from gameday.gamedays.session import GamedaySession, Progress

    path, cloud = deployment_file
    os.environ.setdefault("GAMEDAY_RUN_ID", run_dir.name)   # the faults mark what they change with it
    progress = Progress(emit=_progress_sink(request.config, run_dir))
    session = GamedaySession.open(path, run_dir=run_dir, local_cloud=cloud, progress=progress)
    session.slo_overrides = dict(slo_overrides)
    shutil.copyfile(path, run_dir / "deployment.yaml")
    alluredir = request.config.getoption("--alluredir", default=None)
    if alluredir:
        _write_allure_run_files(Path(alluredir), session)
    from gameday.report.progress_events import follow_phases

    unfollow = follow_phases(progress.phase)
    try:
        yield session
    finally:
        unfollow()
        session.close()


def _progress_sink(config: pytest.Config, run_dir: Path) -> Callable[[dict[str, Any]], None] | None:
    """Where this process's progress events go: `gameday run` reads them from the run folder (every
    worker its own file); plain pytest shows them as lines, one per phase (-v: per wait too)."""
    mode = config.getoption("--gameday-progress", default="lines")
    if mode == "off":
        return None
    if mode == "events":
        from gameday.report.progress_events import EventFile, progress_dir

        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        return EventFile(progress_dir(run_dir) / f"{worker}-{os.getpid()}.jsonl").append
    from gameday.report.progress_view import Board, PlainView

    level = max(-1, min(1, config.get_verbosity()))
    board = Board(PlainView(_terminal_writer(config), level=level))

    def show(item: dict[str, Any]) -> None:
        board.apply(item)
        if item.get("kind") == "row":
            board.finish(str(item.get("node")), "passed")

    return show


def _terminal_writer(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines reach the terminal even while pytest captures output (fd-level)."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        if capman is None:
            print(line, flush=True)
            return
        with capman.global_and_fixture_disabled():
            print(line, file=sys.stderr, flush=True)

    return write


def _write_allure_run_files(alluredir: Path, session: GamedaySession) -> None:
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
    """SLOs given with --slo / GAMEDAY_SLO, over those of the deployment file."""
    from gameday.measure.slo import parse_overrides

    return parse_overrides(pytestconfig.getoption("--slo"))


@pytest.fixture(scope="session")
def gameday_for_routing(pytestconfig: pytest.Config, gameday: Any, run_dir: Path) -> Iterator[Callable[[str], Any]]:
    """routing -> a GamedaySession on a deployment with that routing: the main one if it has it, else
    (embedded cloud only) a second local cloud started on first use, else the test is skipped. A
    deployment failing over between chosen pairs is latency-routed at its domain (its latency
    records alias the pairs), so it serves the latency game days itself."""
    from contextlib import ExitStack

    from gameday.gamedays.session import GamedaySession

    chosen = settings(pytestconfig)
    sessions: dict[str, Any] = {gameday.deployment.routing: gameday}
    if gameday.deployment.routes_by_client:
        sessions.setdefault("latency", gameday)
    with ExitStack() as stack:
        def get(routing: str) -> Any:
            if routing in sessions:
                return sessions[routing]
            if chosen.deployment.value is not None:
                pytest.skip(f"needs a {routing}-routed deployment; {gameday.deployment_path} routes by "
                            f"{gameday.deployment.routing} (run without --deployment to use embedded local clouds)")
            from gameday.localcloud.process.launcher import LocalCloud

            gameday.progress.say(f"starting a second local cloud with {routing} routing")
            cloud = stack.enter_context(LocalCloud(time_scale=chosen.time_scale.value, routing=routing,
                                                   **_second_cloud_layout(chosen, routing)))
            session = GamedaySession.open(cloud.deployment_path, run_dir=run_dir, local_cloud=cloud,
                                          progress=gameday.progress)
            session.slo_overrides = dict(gameday.slo_overrides)
            stack.callback(session.close)
            sessions[routing] = session
            return session

        yield get


def _second_cloud_layout(chosen: Settings, routing: str) -> dict[str, Any]:
    """The regions, consistency and witness of a second local cloud routed by `routing`. Failover
    records pair two regions, so a failover cloud beside a wider one takes its first two; under
    strong consistency the third becomes the witness, so the table keeps the 3 regions MRSC needs."""
    from gameday.table_consistency import STRONG

    regions, witness = list(chosen.local_regions.value), chosen.local_witness.value
    if routing == "failover" and len(regions) > 2:
        if chosen.local_consistency.value == STRONG:
            witness = regions[2]
        regions = regions[:2]
    return {"regions": regions, "consistency": chosen.local_consistency.value, "witness": witness}


@pytest.fixture
def latency_gameday(gameday_for_routing: Callable[[str], Any]) -> Any:
    """A GamedaySession on a latency-routed deployment (see gameday_for_routing)."""
    return gameday_for_routing("latency")
