"""Fixtures for the harness's own tests.

`cloud` is one embedded local cloud (child process) per pytest worker, shared by the
tests of that worker: tests that fault it must undo what they did. Tests that need a
broken or differently-shaped deployment start their own with `LocalCloud(...)`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from gameday.localcloud.process.launcher import LocalCloud


def pytest_configure(config: pytest.Config) -> None:
    """The runs the tests start remember their journals in a folder of the test run's own, never in
    the user's state folder (every subprocess inherits the variable)."""
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
