"""End-to-end tests run `gameday` as a user does (tests/support/run_helpers.py). Several need one
local cloud of their own for a module (shared by its tests, which leave it as they found it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday.localcloud.process.launcher import LocalCloud


@pytest.fixture(scope="module")
def module_cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud
