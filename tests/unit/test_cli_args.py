"""`gameday run`'s command line: the pytest arguments it builds, the team folders it checks before
pytest starts, and the imports it keeps off the path of a run that does not need them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.cli.main import build_parser, load_settings_given, main
from gameday.cli.run import GAMEDAY_PLUGIN, catalog_dir, loads_own_plugins, pytest_args_for_run, run_pytest
from gameday.errors import UsageError


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser(["run", *argv]).parse_args(["run", *argv])


def fresh_interpreter(code: str) -> str:
    """Run `code` in a new interpreter (this one has imported everything already)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_catalog_only_run_names_its_plugins_and_loads_no_others(tmp_path: Path) -> None:
    args = run_args()
    argv = pytest_args_for_run(args, tmp_path)
    assert argv[0] == str(catalog_dir())
    assert loads_own_plugins(args)
    assert ["-p", GAMEDAY_PLUGIN] == argv[argv.index(GAMEDAY_PLUGIN) - 1:argv.index(GAMEDAY_PLUGIN) + 1]
    assert "xdist.plugin" not in argv  # no workers asked for
    assert "xdist.plugin" in pytest_args_for_run(run_args("-n", "2"), tmp_path)


def test_scenarios_run_beside_the_catalog_or_instead_of_it(tmp_path: Path) -> None:
    team_a, team_b = tmp_path / "a", tmp_path / "b"
    team_a.mkdir()
    team_b.mkdir()
    beside = pytest_args_for_run(run_args("--scenarios", str(team_a), "--scenarios", str(team_b)), tmp_path)
    assert beside[:3] == [str(catalog_dir()), str(team_a.resolve()), str(team_b.resolve())]
    instead = pytest_args_for_run(run_args("--scenarios", str(team_a), "--no-catalog"), tmp_path)
    assert str(catalog_dir()) not in instead and instead[0] == str(team_a.resolve())
    # a team's game days may need plugins of its own environment
    assert not loads_own_plugins(run_args("--scenarios", str(team_a)))
    assert GAMEDAY_PLUGIN not in beside


def test_a_bad_scenarios_folder_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^--scenarios: no such directory: "):
        pytest_args_for_run(run_args("--scenarios", str(tmp_path / "missing")), tmp_path)
    not_tests = tmp_path / "notes.txt"
    not_tests.write_text("")
    with pytest.raises(UsageError, match="^--scenarios: expected a directory"):
        pytest_args_for_run(run_args("--scenarios", str(not_tests)), tmp_path)
    with pytest.raises(UsageError, match="^--no-catalog: "):
        pytest_args_for_run(run_args("--no-catalog"), tmp_path)


def test_the_command_reports_a_bad_scenarios_folder_in_one_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--scenarios", str(tmp_path / "missing"), "--report-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("gameday: --scenarios: ")
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_load_settings_are_checked_only_when_given() -> None:
    assert not load_settings_given(run_args(), env={"GAMEDAY_DEPLOYMENT": "x"})
    assert load_settings_given(run_args("--load-rate", "10"), env={})
    assert load_settings_given(run_args(), env={"GAMEDAY_LOAD_ACKED_WRITES": "10"})
    assert load_settings_given(run_args(), env={"GAMEDAY_SLO": "errors=5"})


def test_without_autoload_the_variable_is_set_for_the_run_only(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    seen: list[str | None] = []
    import os

    monkeypatch.setattr("pytest.main", lambda argv, plugins=None: seen.append(os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")) or 0)
    assert run_pytest([], autoload=False) == 0
    assert run_pytest([], autoload=True) == 0
    assert seen == ["1", None]
    assert "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in os.environ


HEAVY = ("pytest", "boto3", "botocore", "numpy", "matplotlib", "moto", "allure", "requests", "gameday.localcloud",
         "gameday.gamedays")


def heavy_modules_after(code: str) -> list[str]:
    out = fresh_interpreter(code + "\nimport sys\n"
                            f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    last = out.splitlines()[-1] if out else ""
    return [name for name in last.split(",") if name]


def test_the_command_and_the_package_import_nothing_heavy() -> None:
    assert heavy_modules_after("import gameday") == []
    parsed = "from gameday.cli.main import build_parser\nbuild_parser(['run']).parse_args(['run'])"
    assert heavy_modules_after(parsed) == []


def test_the_plugin_imports_only_pytest() -> None:
    assert heavy_modules_after("import gameday.plugin") == ["pytest"]


def test_local_up_still_has_its_arguments() -> None:
    args = build_parser(["local", "up", "--port", "0"]).parse_args(["local", "up", "--port", "0"])
    assert args.port == 0


def test_a_run_that_selects_nothing_starts_no_local_cloud(tmp_path: Path) -> None:
    """Nothing collected: no local cloud, and the local cloud's code not even imported."""
    out = fresh_interpreter(
        "import sys\nfrom gameday.cli.main import main\n"
        f"code = main(['run', '-k', 'nothing-matches', '--no-html', '--report-dir', {str(tmp_path)!r}])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(('gameday.localcloud', 'moto'))))")
    assert out.splitlines()[-1] == "5 []", out[-3000:]  # pytest: no tests collected


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "-k", "(("], "gameday: -k: expected a pytest selection expression, got '(('"),
    (["run", "-m", "(("], "gameday: -m: expected a pytest selection expression, got '(('"),
    (["run", "--wait-lock", "-1"], "gameday: --wait-lock: expected a number of seconds >= 0"),
    (["run", "--slo", "client_outage_s=-5"], "gameday: --slo: client_outage_s: expected a number >= 0"),
    (["report", "--report-dir", "/nonexistent/gameday-reports"], "gameday: --report-dir: expected a folder"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    assert main([*argv, *(["--report-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected) and "\n" not in err, err


def test_restore_refuses_a_folder_and_a_garbage_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from tests.unit.test_config import GOOD

    described = tmp_path / "deployment.yaml"
    described.write_text(yaml.safe_dump(GOOD))
    garbage = tmp_path / "journal.jsonl"
    garbage.write_text("this is not\na journal\n")
    for journal, expected in ((tmp_path, "expected a journal file, got a folder"),
                              (garbage, "is not a gameday fault journal")):
        assert main(["restore", "--deployment", str(described), "--journal", str(journal)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gameday: --journal: ") and expected in err, err


def test_restore_finds_the_latest_runs_journal_wherever_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from gameday.cli.journals import remember_journal
    from tests.unit.test_config import GOOD

    monkeypatch.setenv("GAMEDAY_STATE_DIR", str(tmp_path / "state"))
    described = tmp_path / "deployment.yaml"
    described.write_text(yaml.safe_dump(GOOD))
    assert main(["restore", "--deployment", str(described)]) == 0
    assert "no journal found (looked at" in capsys.readouterr().out
    journal = tmp_path / "elsewhere" / "journal.jsonl"
    journal.parent.mkdir()
    journal.write_text("")
    remember_journal(journal)
    assert main(["restore", "--deployment", str(described)]) == 0
    out = capsys.readouterr().out
    assert f"the latest run's journal: {journal}" in out and "nothing left injected" in out


def test_junit_xml_is_passed_to_pytest(tmp_path: Path) -> None:
    argv = pytest_args_for_run(run_args("--junitxml", str(tmp_path / "junit.xml")), tmp_path)
    assert argv[argv.index("--junitxml") + 1] == str((tmp_path / "junit.xml").resolve())


def test_the_address_prefix_takes_three_loopback_octets_with_or_without_the_dot() -> None:
    from gameday.localcloud.process.serve import address_prefix

    assert address_prefix("127.0.0") == address_prefix("127.0.0.") == "127.0.0."
    assert address_prefix("127.18.004") == "127.18.4."
    assert address_prefix("random") is None
    for junk in ("junk", "10.0.0", "127.0", "127.0.0.1", "127.0.256", ""):
        with pytest.raises(UsageError, match=r"^--address-prefix: expected the first three octets .* got "):
            address_prefix(junk)
