"""Fixtures for the harness's own tests.

`cloud` is one embedded local cloud (child process) per pytest worker, shared by the
tests of that worker: tests that fault it must undo what they did. Tests that need a
broken or differently-shaped deployment start their own with `LocalCloud(...)`.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator

import pytest

from gameday.localcloud.process.launcher import LocalCloud


def pytest_configure(config: pytest.Config) -> None:
    """The runs the tests start remember their journals in a folder of the test run's own, never in
    the user's state folder (every subprocess inherits the variable).

    The tests interrupt runs with SIGINT as a terminal's Ctrl-C would. A suite started in the
    background of a shell without job control (`cmd &`, nohup) inherits SIGINT ignored, and an
    ignored signal stays ignored across exec, so every run the tests start would ignore it too;
    a handler of our own is reset to the default at exec, so those runs see SIGINT again."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not os.environ.get("GAMEDAY_STATE_DIR"):
        folder = tempfile.mkdtemp(prefix="gameday-state-")
        os.environ["GAMEDAY_STATE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as running:
        yield running


@pytest.fixture(scope="session")
def local_cloud(cloud: LocalCloud):
    """The running cloud's deployment description, loaded as the harness loads it."""
    from gameday.deployment import load_deployment

    return load_deployment(cloud.deployment_path)
