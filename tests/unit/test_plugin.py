"""The pytest plugin as a team meets it: plain `pytest` in a folder of their own, the plugin loaded
through its entry point. Its settings come from the command line, else the environment; unrelated
tests in the same run are left exactly as they would be without gameday."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.test_config import GOOD

TEAM_TEST = '''
import pytest

@pytest.mark.failover
@pytest.mark.destructive
def test_my_failover(failed_region, load_settings, slo_overrides, run_dir):
    assert failed_region in ("eu-west-1", "us-east-1")
    assert load_settings.rate > 0 and slo_overrides == {}
    assert run_dir.is_dir()
'''

UNRELATED_TEST = '''
import pytest

@pytest.mark.local_only
@pytest.mark.destructive
def test_unrelated():
    pass
'''


def pytest_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest as a team runs it: in its own folder, with whatever GAMEDAY_* it has set. (Two slow
    plugins this environment happens to have are left out; gameday's own comes by its entry point.)"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--strict-markers",
                           "-p", "no:hypothesispytest", "-p", "no:benchmark", *args], cwd=folder, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def team(tmp_path: Path) -> Path:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "test_team.py").write_text(TEAM_TEST)
    (folder / "test_unrelated.py").write_text(UNRELATED_TEST)
    return folder


def test_plain_pytest_in_a_team_folder_gets_the_fixtures_and_markers(team: Path) -> None:
    proc = pytest_in(team, "-q", "--run-dir", str(team / "run"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout


def test_failed_region_is_parametrised_over_the_regions(team: Path) -> None:
    proc = pytest_in(team, "--collect-only", "-q", "test_team.py")
    assert "test_my_failover[eu-west-1]" in proc.stdout and "test_my_failover[us-east-1]" in proc.stdout
    proc = pytest_in(team, "--collect-only", "-q", "test_team.py", env={"GAMEDAY_FAIL_REGION": "us-east-1"})
    assert "[us-east-1]" in proc.stdout and "[eu-west-1]" not in proc.stdout
    # the command line wins over the environment
    proc = pytest_in(team, "--collect-only", "-q", "test_team.py", "--fail-region", "eu-west-1",
                     env={"GAMEDAY_FAIL_REGION": "us-east-1"})
    assert "[eu-west-1]" in proc.stdout and "[us-east-1]" not in proc.stdout


@pytest.mark.parametrize(("env", "option", "named"), [
    ({"GAMEDAY_DEPLOYMENT": "/nowhere/deployment.yaml"}, (), "GAMEDAY_DEPLOYMENT: "),
    ({}, ("--deployment", "/nowhere/deployment.yaml"), "--deployment: "),
    ({"GAMEDAY_FAIL_REGION": "mars-1"}, (), "GAMEDAY_FAIL_REGION: 'mars-1' is not a region"),
    ({"GAMEDAY_TIME_SCALE": "fast"}, (), "GAMEDAY_TIME_SCALE: expected a number in (0, 1], got 'fast'"),
    ({}, ("--time-scale", "2"), "--time-scale: expected a number in (0, 1], got '2'"),
])
def test_a_bad_setting_names_where_it_came_from(team: Path, env: dict[str, str], option: tuple[str, ...],
                                                named: str) -> None:
    proc = pytest_in(team, "-q", "test_team.py", *option, env=env)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_game_day_settings_do_not_change_unrelated_tests(team: Path) -> None:
    """A bad GAMEDAY_DEPLOYMENT, or one that is not a local cloud, leaves a test that asks for no
    game-day fixture alone: not skipped as local-only, not grouped, not an error."""
    not_local = {**GOOD, "target": "aws", "control_url": None, "aws_endpoint_url": None, "time_scale": 1.0}
    description = team / "aws.yaml"
    description.write_text(yaml.safe_dump(not_local))
    for value in ("/nowhere/deployment.yaml", str(description)):
        proc = pytest_in(team, "-q", "-rs", "test_unrelated.py", env={"GAMEDAY_DEPLOYMENT": value})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "1 passed" in proc.stdout and "skipped" not in proc.stdout


def test_local_only_game_days_are_skipped_against_a_deployment_that_is_not_local(team: Path) -> None:
    (team / "test_local.py").write_text(
        "import pytest\n\n@pytest.mark.local_only\ndef test_needs_local(failed_region):\n    pass\n")
    not_local = {**GOOD, "target": "aws", "control_url": None, "aws_endpoint_url": None, "time_scale": 1.0}
    description = team / "aws.yaml"
    description.write_text(yaml.safe_dump(not_local))
    proc = pytest_in(team, "-q", "-rs", "test_local.py", "--deployment", str(description))
    assert "2 skipped" in proc.stdout, proc.stdout[-3000:]
    assert "needs the embedded local cloud" in proc.stdout
