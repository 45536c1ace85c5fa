"""GamedaySession: what every scenario shares for one deployment in one pytest worker.

The deployment, one set of AWS clients, the probes, a journal, a resolver, the poll interval,
the local cloud's ground truth (read from the description's control_url, so a cloud started by
`gameday local up` is seen too), the run directory where each scenario's row lands, and
progress events for the run's display.
"""

from __future__ import annotations

import os
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
from gameday.observe import route53 as route53_probe
from gameday.observe.ground_truth import GroundTruth
from gameday.observe.resolver import Resolver
from gameday.observe.route53 import Route53HealthProbe
from gameday.records import write_row
from gameday.report.progress_events import Event, event


class Progress:
    """What a scenario is doing (its phase, what it waits for, its verdict), as events for the run's
    display: the scenario runs in a worker, the display in the process that owns the terminal.
    A wait is sent when what it sees changes, else at most once per `min_interval_s`."""

    def __init__(self, emit: Callable[[Event], None] | None = None, min_interval_s: float = 1.0) -> None:
        self._emit = emit
        self._min_interval_s = min_interval_s
        self._last: tuple[Any, float] = (None, 0.0)
        self._lock = threading.Lock()

    def phase(self, name: str) -> None:
        self._send("phase", None, name=name)

    def health(self, region: str, failing: int, total: int, elapsed: float, budget: float) -> None:
        self.waiting(f"Route 53 {region}: {failing}/{total} checkers failing", budget_s=budget, elapsed_s=elapsed)

    def waiting(self, what: str, *, budget_s: float, elapsed_s: float = 0.0) -> None:
        self._send("wait", what, what=what, elapsed=round(elapsed_s, 3), budget=round(budget_s, 3))

    def say(self, text: str) -> None:
        self._send("note", None, text=text)

    def finished(self, row: dict[str, Any]) -> None:
        self._send("row", None, verdict=row.get("verdict"), category=row.get("failure_category"))

    def _send(self, kind: str, throttle_key: Any, **data: Any) -> None:
        if self._emit is None or os.environ.get("GAMEDAY_QUIET"):
            return
        if throttle_key is not None:
            now = time.monotonic()
            with self._lock:
                last_key, last_t = self._last
                if throttle_key == last_key and now - last_t < self._min_interval_s:
                    return
                self._last = (throttle_key, now)
        try:
            self._emit(event(kind, **data))
        except (OSError, ValueError):
            pass   # progress is for watching: it never fails a game day


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
    _check_configs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _config_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def poll_s(self) -> float:
        """The interval of every wait of this session's game days: a fifth of the shortest scaled
        RequestInterval of the deployment's health checks (timing.poll_interval_for)."""
        try:
            interval = min(self.check_interval_s(r.health_check_id) for r in self.deployment.regions)
        except Exception:  # noqa: BLE001 - a deployment whose checks cannot be read fails at steady state
            return timing.poll_interval(self.deployment)
        return timing.poll_interval_for(interval, self.deployment.time_scale)

    # -- the deployment's own timing: every budget is derived from it ----------------------
    def check_config(self, hc_id: str) -> dict[str, Any]:
        """GetHealthCheck's HealthCheckConfig, read once per session (it does not change during a run,
        and Route 53's API budget is shared by the whole account)."""
        with self._config_lock:
            known = self._check_configs.get(hc_id)
        if known is None:
            known = self.health.health_check_config(hc_id)
            with self._config_lock:
                self._check_configs[hc_id] = known
        return known

    def check_interval_s(self, hc_id: str) -> float:
        """RequestInterval in AWS seconds."""
        return float(self.check_config(hc_id).get("RequestInterval", 30))

    def check_threshold(self, hc_id: str) -> int:
        return int(self.check_config(hc_id).get("FailureThreshold", 3))

    def detection_budget(self, hc_id: str) -> float:
        """How long Route 53 may take to change its mind about one check (measured seconds)."""
        return route53_probe.detection_budget(self.check_config(hc_id), self.deployment.time_scale)

    @property
    def ttl_s(self) -> float:
        """One record TTL in measured seconds (how long a client may keep an answer)."""
        return self.deployment.record_ttl_s * self.deployment.time_scale

    def interval_s(self, hc_id: str) -> float:
        """One RequestInterval in measured seconds."""
        return self.check_interval_s(hc_id) * self.deployment.time_scale

    def dns_shift_budget(self, hc_id: str, *, through_resolver: bool) -> float:
        """Detection plus, for a client's caching resolver, one TTL; plus one checker interval (the
        routing decision follows the status at Route 53's own pace)."""
        return self.detection_budget(hc_id) + self.interval_s(hc_id) + (self.ttl_s if through_resolver else 0.0)

    def all_checks_budget(self, *, through_resolver: bool = False) -> float:
        """The slowest region's DNS shift budget: for waits on every region at once."""
        return max(self.dns_shift_budget(r.health_check_id, through_resolver=through_resolver)
                   for r in self.deployment.regions)

    def follow_budget(self) -> float:
        """How long clients take to follow a routing change: two TTLs (one cached before, one after
        the change) plus the slowest checker interval."""
        return 2 * self.ttl_s + max(self.interval_s(r.health_check_id) for r in self.deployment.regions)

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
        path = write_row(self.run_dir, row)
        self.progress.finished(row)
        return path

    def ground_truth(self, kind: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """The local cloud's record of transitions (empty against AWS: there is none)."""
        return self.truth.events(kind=kind, since=since)

    def close(self) -> None:
        pass
