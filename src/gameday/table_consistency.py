"""A global table's consistency mode and the layouts multi-Region strong consistency accepts.

MRSC (GA June 2025) runs on exactly three regions of one region set: three replicas, or two
replicas plus a witness (a region that holds the replication log but serves no reads or writes).
The table must be version 2019.11.21 and empty when the mode is chosen; the mode cannot change
later. One check, used by provisioning and by the local cloud, so both refuse what AWS refuses.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

EVENTUAL = "EVENTUAL"
STRONG = "STRONG"
CONSISTENCIES = (EVENTUAL, STRONG)
MRSC_TABLE_VERSION = "2019.11.21"

# The region sets MRSC replicates within (a table's three regions all come from one of them).
MRSC_REGION_SETS: dict[str, frozenset[str]] = {
    "US": frozenset({"us-east-1", "us-east-2", "us-west-2"}),
    "EU": frozenset({"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"}),
    "AP": frozenset({"ap-northeast-1", "ap-northeast-2", "ap-northeast-3"}),
}


def mrsc_layout_problem(replicas: Sequence[str], witness: str | None) -> str | None:
    """Why MRSC refuses these replicas and witness (None when it accepts them), in AWS's terms."""
    regions = [*replicas, *([witness] if witness else [])]
    if len(set(regions)) != len(regions):
        return f"each region may appear once (replicas and witness), got {', '.join(regions)}"
    if witness is not None and len(replicas) != 2:
        return f"a witness pairs with exactly 2 replicas, got {len(replicas)}"
    if len(regions) != 3:
        return (f"multi-Region strong consistency takes exactly 3 regions (3 replicas, or 2 and a witness), "
                f"got {len(regions)}")
    sets = {name for name, members in MRSC_REGION_SETS.items() if set(regions) <= members}
    if not sets:
        listed = "; ".join(f"{name}: {', '.join(sorted(members))}" for name, members in MRSC_REGION_SETS.items())
        return f"all 3 regions must come from one region set ({listed}), got {', '.join(regions)}"
    return None


def add_consistency_arguments(parser: argparse.ArgumentParser, *, whose: str = "the global table's") -> None:
    """--consistency and --witness, as every command that makes a global table offers them."""
    parser.add_argument("--consistency", default=None, metavar="eventual|strong",
                        help=f"{whose} MultiRegionConsistency (default eventual); strong: multi-Region strong "
                             "consistency, on a 2019.11.21 table of exactly 3 regions of one region set "
                             "(--regions names 3, or 2 and --witness)")
    parser.add_argument("--witness", default=None, metavar="REGION",
                        help="with --consistency strong and 2 --regions: the third region, which holds no replica "
                             "(no table, no endpoint) and only takes part in each write's commit")
