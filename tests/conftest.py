"""Fixtures for the harness's own tests.

`cloud` is one embedded local cloud (child process) per pytest worker, shared by the
tests of that worker: tests that fault it must undo what they did. Tests that need a
broken or differently-shaped deployment start their own with `LocalCloud(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday.localcloud.process.launcher import LocalCloud


@pytest.fixture(scope="session")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as running:
        yield running


@pytest.fixture(scope="session")
def local_cloud(cloud: LocalCloud):
    """The running cloud's deployment description, loaded as the harness loads it."""
    from gameday.deployment import load_deployment

    return load_deployment(cloud.deployment_path)
