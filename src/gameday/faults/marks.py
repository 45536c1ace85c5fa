"""A fault marks what it changed where every run and every operator can see it: a tag
`gameday:fault=<run id>` on the function, set before the change and removed after the restore.

Why besides the lease: two game days started by hand, or a run without a lease table, would each
snapshot the other's injected value as "before" and restore the wrong one. A run never snapshots
a function that carries another run's mark; it stops instead, naming that run.
"""

from __future__ import annotations

import os
from typing import Any

from gameday.errors import ScenarioStopped

TAG = "gameday:fault"
RUN_ID_ENV = "GAMEDAY_RUN_ID"


def this_run() -> str:
    """The id of the run this process belongs to (the plugin sets it; a bare script is "adhoc-<pid>")."""
    return os.environ.get(RUN_ID_ENV) or f"adhoc-{os.getpid()}"


def function_arn(lam: Any, function: str) -> str:
    return str(lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"])


def check_unmarked(lam: Any, arn: str, *, function: str, region: str) -> None:
    """ScenarioStopped naming the run whose mark `arn` carries (a run's own mark is fine: it is
    re-injecting after a conflict, or a restore of its own)."""
    tags = lam.list_tags(Resource=arn).get("Tags") or {}
    holder = tags.get(TAG)
    if holder and holder != this_run():
        raise ScenarioStopped("marked", f"{function} in {region} carries {TAG}={holder}: run {holder} has a "
                                        f"fault in place there; not touching it (when that run is gone, "
                                        f"`gameday restore` puts it back and removes the mark)", 0.0)


def mark(lam: Any, arn: str) -> None:
    lam.tag_resource(Resource=arn, Tags={TAG: this_run()})


def unmark(lam: Any, arn: str) -> None:
    """Remove the mark (whoever set it: called once the value it guards is restored)."""
    lam.untag_resource(Resource=arn, TagKeys=[TAG])
