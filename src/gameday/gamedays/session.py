"""GamedaySession: what every scenario shares for one deployment in one pytest worker.

The deployment, one set of AWS clients, the probes, a journal, a resolver, the poll interval,
the local cloud's ground truth (read from the description's control_url, so a cloud started by
`gameday local up` is seen too), the run directory where each scenario's row lands, and
progress output for long waits.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameday import timing
from gameday.aws import AwsClients
from gameday.deployment import Deployment, load_deployment
from gameday.faults.journal import Journal
from gameday.observe.ground_truth import GroundTruth
from gameday.observe.resolver import Resolver
from gameday.observe.route53 import Route53HealthProbe
from gameday.records import write_row


class Progress:
    """One line per change (or per second) during long waits, straight to the terminal:
    pytest captures stdout, but a person watching a game day wants to see the wait."""

    def __init__(self, stream: Any = None, min_interval_s: float = 1.0,
                 write: Callable[[str], None] | None = None) -> None:
        self._stream = stream or sys.__stderr__
        self._write = write
        self._min_interval_s = min_interval_s
        self._last: tuple[Any, float] = (None, 0.0)
        self._lock = threading.Lock()

    def health(self, region: str, failing: int, total: int, elapsed: float, budget: float) -> None:
        key = ("health", region, failing, total)
        self._say(key, f"  [{region}] Route 53: {failing}/{total} checkers failing, "
                       f"{elapsed:.2f} s of {budget:.2f} s budget")

    def say(self, text: str) -> None:
        self._say(("text", text), f"  {text}", force=True)

    def _say(self, key: Any, line: str, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            last_key, last_t = self._last
            if not force and key == last_key and now - last_t < self._min_interval_s:
                return
            self._last = (key, now)
        if os.environ.get("GAMEDAY_QUIET"):
            return
        try:
            if self._write is not None:
                self._write(line)
            else:
                print(line, file=self._stream, flush=True)
        except (OSError, ValueError):
            pass


@dataclass
class GamedaySession:
    deployment: Deployment
    deployment_path: Path
    run_dir: Path
    clients: AwsClients
    health: Route53HealthProbe
    journal: Journal
    resolver: Resolver
    local_cloud: Any = None          # gameday.localcloud.process.launcher.LocalCloud when the harness started one
    progress: Progress = field(default_factory=Progress)
    truth: GroundTruth = field(default_factory=lambda: GroundTruth(None))
    slo_overrides: dict[str, float] = field(default_factory=dict)   # --slo / GAMEDAY_SLO, over the file's

    @property
    def poll_s(self) -> float:
        """The interval of every wait of this session's game days (timing.poll_interval)."""
        return timing.poll_interval(self.deployment)

    @classmethod
    def open(cls, deployment_path: str | Path, *, run_dir: Path, local_cloud: Any = None,
             progress: Progress | None = None) -> GamedaySession:
        deployment = load_deployment(deployment_path)
        clients = AwsClients(deployment)
        run_dir.mkdir(parents=True, exist_ok=True)
        # One journal per report dir (not per run), so `gameday restore` finds what any run left.
        journal = Journal(run_dir.parent / "journal.jsonl")
        return cls(
            deployment=deployment,
            deployment_path=Path(deployment_path),
            run_dir=run_dir,
            clients=clients,
            health=Route53HealthProbe(clients.route53(), time_scale=deployment.time_scale),
            journal=journal,
            resolver=Resolver.from_deployment(deployment, cache=False),
            local_cloud=local_cloud,
            progress=progress or Progress(),
            truth=GroundTruth(deployment.control_url),
        )

    def add_row(self, row: dict[str, Any]) -> Path:
        """One scenario's result; workers write separate files, `gameday run` merges them."""
        return write_row(self.run_dir, row)

    def ground_truth(self, kind: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """The local cloud's record of transitions (empty against AWS: there is none)."""
        return self.truth.events(kind=kind, since=since)

    def close(self) -> None:
        pass
