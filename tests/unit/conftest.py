"""Unit tests: no local cloud and no subprocess of gameday; a test that needs one belongs in
integration/, localcloud/ or e2e/. Starting a local cloud here fails the test at once."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_local_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    from gameday.localcloud.process import launcher

    def refuse(self: object) -> None:
        raise AssertionError("a unit test started a local cloud: move it to tests/integration or tests/e2e")

    monkeypatch.setattr(launcher.LocalCloud, "start", refuse)
