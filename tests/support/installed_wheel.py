"""gameday as a user gets it: the wheel built from this checkout, installed (not editable) into a
fresh venv in a temporary folder, run from folders that hold no source tree.

Building and installing costs one to two minutes, so one install serves every test of a pytest
process: the tests that use it share one xdist group (`INSTALLED_GROUP`), which puts them on one
worker, and take it through a session-scoped fixture.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
INSTALLED_GROUP = "installed-gameday"

# What the wheel is built from: exactly what setuptools reads. A copy, so that the build writes no
# build/ or src/*.egg-info into the checkout the other tests import from, and so that stale files
# a checkout's build/lib may hold cannot reach the wheel (setuptools copies into it, never prunes).
_BUILD_INPUTS = ("pyproject.toml", "README.md", "src")
_BUILD_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache")


@dataclass(frozen=True)
class InstalledGameday:
    root: Path    # the temporary folder: wheel/, venv/ and the runs' own folders
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def workdir(self, name: str) -> Path:
        """A fresh folder outside the checkout to run a command from."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The caller's environment without what would reach into the checkout or change a run
        (PYTHONPATH, an active venv, GAMEDAY_* settings), with the venv's bin first on PATH."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
               and not k.startswith(("GAMEDAY_", "PYTEST_XDIST_", "COV_"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["GAMEDAY_QUIET"] = "1"
        env.update(extra or {})
        return env

    def popen(self, *argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """A command from the venv's bin (`gameday`, `pytest`, `python`), in its own process group."""
        return subprocess.Popen([str(self.bin / argv[0]), *argv[1:]], cwd=cwd, env=self.env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run(self, *argv: str, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Finished:
        proc = self.popen(*argv, cwd=cwd, env=env)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            stop_group(proc)
        return Finished(proc.returncode, stdout, stderr)


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    def tail(self, chars: int = 4000) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout[-chars:]}\n--- stderr\n{self.stderr[-chars:]}"


def stop_group(proc: subprocess.Popen[str]) -> None:
    """Every process a test starts, it stops: the whole group, if anything of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait()


class _Shared:
    install: InstalledGameday | None = None
    failed: str | None = None   # a build that failed is not tried again by the next user
    users = 0


@contextmanager
def installed_gameday() -> Iterator[InstalledGameday]:
    """The one install of this process: built for its first user, removed after its last.
    Meant for session-scoped fixtures (all of them end together, at the session's end)."""
    if _Shared.failed is not None:
        raise AssertionError(f"the wheel install failed earlier in this session: {_Shared.failed}")
    if _Shared.install is None:
        root = Path(tempfile.mkdtemp(prefix="gameday-installed-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)  # in case a user never ends
        try:
            _Shared.install = _build_and_install(root)
        except BaseException as exc:
            _Shared.failed = f"{type(exc).__name__}: {exc}"[:4000]
            shutil.rmtree(root, ignore_errors=True)
            raise
    install = _Shared.install
    _Shared.users += 1
    try:
        yield install
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            _Shared.install = None
            shutil.rmtree(install.root, ignore_errors=True)


def _pip(python: Path | str, *args: str, cwd: Path, timeout: float) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"pip {' '.join(args[:2])} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")


def _build_and_install(root: Path) -> InstalledGameday:
    source = root / "source"
    source.mkdir()
    for name in _BUILD_INPUTS:
        path = PROJECT_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=_BUILD_IGNORE)
        else:
            shutil.copy2(path, source / name)
    wheel_dir = root / "wheel"
    _pip(sys.executable, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheel_dir), str(source),
         cwd=root, timeout=600)
    shutil.rmtree(source)  # nothing of the source tree is left beside the install
    (wheel,) = wheel_dir.glob("gameday-*.whl")

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    # A real install of the wheel and its dependencies, at the versions CI pins (pip's cache
    # makes the second time fast); no --system-site-packages, so nothing comes from the machine.
    # --no-compile: byte-compiling all of botocore and numpy up front costs more than the few
    # modules a run imports compile on first use.
    _pip(env_dir / "bin" / "python", "install", "--quiet", "--no-compile", "-c", str(CONSTRAINTS), str(wheel),
         cwd=root, timeout=1200)
    return InstalledGameday(root=root, wheel=wheel, venv=env_dir)
