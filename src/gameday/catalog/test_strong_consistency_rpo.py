"""Game day: RPO 0 on a multi-Region strongly consistent table. The failing region takes writes
until its outage (every function throttled); right after, each survivor reads every write the
region acknowledged, strongly, and none may be missing. Items written at once through two regions
are rejected as conflicts (counted, never lost) or read everywhere as the write that was
acknowledged. The region is restored and takes writes again.

Runs on tables with MultiRegionConsistency STRONG, e.g. the embedded cloud's
`gameday run --regions eu-west-1,eu-west-2,eu-west-3 --consistency strong -k strong_consistency`;
on an eventually consistent table it is skipped, saying so.
"""

from __future__ import annotations

import pytest

from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.strong_consistency import StrongConsistencyRpo, table_consistency
from gameday.table_consistency import STRONG


@pytest.mark.destructive
def test_strong_consistency_rpo_zero(gameday, failed_region: str) -> None:
    mode = table_consistency(gameday, failed_region)
    if mode != STRONG:
        pytest.skip(f"table {gameday.deployment.table.name} is {mode}: this game day needs MultiRegionConsistency "
                    f"{STRONG} (e.g. gameday run --regions eu-west-1,eu-west-2,eu-west-3 --consistency strong)")
    game = StrongConsistencyRpo(gameday, failed_region)
    with reported_scenario(gameday, game.run, feature="Strong consistency",
                           story="Writes acknowledged just before a region's outage are read, strongly, from "
                                 "every survivor right after"):
        game.execute()
