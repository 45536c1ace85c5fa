"""SLOs: limits on a run's figures (records.FIGURES), from the deployment file with the command
line's on top, checked for every game day on the figures it measured."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from gameday.errors import UsageError
from gameday.measure.metrics import SloViolation, check_slos
from gameday.records import FIGURES

SLO_ENV = "GAMEDAY_SLO"


def parse_overrides(cli: Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, float]:
    """SLOs from `--slo NAME=MAX` (repeatable) over $GAMEDAY_SLO ("a=1,b=2"); the same rules as the
    deployment file's `slo:` (a known figure, a number >= 0)."""
    env = os.environ if env is None else env
    out: dict[str, float] = {}
    sources = [(part, SLO_ENV) for part in (env.get(SLO_ENV) or "").split(",") if part.strip()]
    sources += [(part, "--slo") for part in (cli or [])]
    for part, where in sources:
        name, sep, value = (piece.strip() for piece in part.strip().partition("="))
        if not sep or not name:
            raise UsageError(f"{where}: expected NAME=MAX (e.g. client_outage_s=120), got {part!r}")
        if name not in FIGURES:
            raise UsageError(f"{where}: unknown figure {name!r} (expected one of {', '.join(FIGURES)})")
        try:
            limit = float(value)
        except ValueError:
            raise UsageError(f"{where}: {name}: expected a number >= 0, got {value!r}") from None
        if not limit >= 0 or limit == float("inf"):
            raise UsageError(f"{where}: {name}: expected a number >= 0, got {value!r}")
        out[name] = limit
    return out


def effective_slos(deployment: Any, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The deployment file's SLOs with the command line's on top."""
    slos = {name: float(limit) for name, limit in dict(deployment.slo).items() if limit is not None}
    slos.update(overrides or {})
    return slos


def violations_of_measured(figures: Mapping[str, Any], slos: Mapping[str, float], *,
                           time_scale: float) -> list[SloViolation]:
    """Violations among the figures this game day measures (a key in `figures`, even if None: a
    figure it measures but could not is a violation); SLOs on figures it does not measure (a
    failover without load has no client outage) do not apply to it."""
    applicable = {name: limit for name, limit in slos.items() if name in figures}
    return check_slos(figures, applicable, time_scale=time_scale)
