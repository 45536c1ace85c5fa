"""CloudWatch metrics of Route 53 health checks, published from the checker fleet's own state.

AWS publishes `HealthCheckStatus` (1 healthy, 0 unhealthy) and `HealthCheckPercentageHealthy`
(the share of checkers whose verdict is healthy) in namespace AWS/Route53, dimension
HealthCheckId, in us-east-1 only, at 1-minute resolution. The local cloud does the same into
moto's CloudWatch backend, so GetMetricStatistics / GetMetricData through the API see them.

Resolution: one datapoint per scaled minute (60 AWS-seconds x time scale, at least
MIN_PERIOD_S local seconds), timestamped with the wall-clock start of that period. Each
datapoint is a statistic set (Minimum, Maximum, Sum, SampleCount) over the value at the start
of the period and every change during it, so a short unhealthy spell inside a minute shows in
Minimum as it does on AWS. At time scale 1 this is AWS's resolution; at 0.01 a "minute" is
0.6 s, and a reader asks with Period = max(1, 60 x time scale) seconds (CloudWatch periods are
whole seconds), so one local period holds one or two datapoints.

These writes go straight to the backend: they are the cloud's own, not API calls, and are never
throttled or counted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53.health_checkers import HealthCheckerFleet

log = logging.getLogger(__name__)

NAMESPACE = "AWS/Route53"
METRIC_REGION = "us-east-1"          # Route 53 metrics exist in us-east-1 only
STATUS_METRIC = "HealthCheckStatus"
PERCENT_METRIC = "HealthCheckPercentageHealthy"
AWS_PERIOD_S = 60.0
MIN_PERIOD_S = 0.05


def _utcnow() -> datetime:
    """Naive UTC, as moto's CloudWatch stores and compares timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Stats:
    minimum: float
    maximum: float
    total: float
    count: int

    @classmethod
    def of(cls, value: float) -> _Stats:
        return cls(value, value, value, 1)

    def add(self, value: float) -> None:
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        self.total += value
        self.count += 1

    def as_statistic_values(self) -> dict[str, float]:
        return {"Minimum": self.minimum, "Maximum": self.maximum, "Sum": self.total,
                "SampleCount": float(self.count)}


class HealthCheckMetrics:
    """Publishes both metrics of every check the fleet knows, once per scaled minute."""

    def __init__(self, ctx: CloudContext, fleet: HealthCheckerFleet) -> None:
        self._ctx = ctx
        self._fleet = fleet
        self.period_s = max(MIN_PERIOD_S, ctx.scale.seconds(AWS_PERIOD_S))
        self._lock = threading.Lock()
        self._open: dict[str, tuple[_Stats, _Stats]] = {}
        self._period_start = _utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        fleet.add_state_listener(self._on_state)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="route53-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _on_state(self, hc_id: str, healthy: bool, fraction: float) -> None:
        with self._lock:
            stats = self._open.get(hc_id)
            status, percent = (1.0 if healthy else 0.0), round(fraction * 100.0, 4)
            if stats is None:        # a check new in this period started healthy, as new checks do
                stats = self._open[hc_id] = (_Stats.of(1.0), _Stats.of(100.0))
            stats[0].add(status)
            stats[1].add(percent)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.flush()
            except Exception:  # a failed flush must not end the metrics for ever
                log.exception("route53 metrics flush failed")

    def flush(self) -> None:
        """Close the current period: one statistic set per check and metric, then start the next
        period from each check's current value."""
        now = _utcnow()
        current = self._fleet.aggregates()
        with self._lock:
            for hc_id, (healthy, fraction) in current.items():
                status, percent = (1.0 if healthy else 0.0), round(fraction * 100.0, 4)
                if hc_id not in self._open:
                    self._open[hc_id] = (_Stats.of(status), _Stats.of(percent))
                else:
                    self._open[hc_id][0].add(status)
                    self._open[hc_id][1].add(percent)
            closing, started = self._open, self._period_start
            self._open = {hc_id: (_Stats.of(1.0 if healthy else 0.0), _Stats.of(round(fraction * 100.0, 4)))
                          for hc_id, (healthy, fraction) in current.items()}
            self._period_start = now
        data = []
        for hc_id, (status_stats, percent_stats) in closing.items():
            if hc_id not in current:
                continue        # deleted during the period: AWS stops publishing it
            dimensions = [{"Name": "HealthCheckId", "Value": hc_id}]
            data.append({"MetricName": STATUS_METRIC, "Dimensions": dimensions, "Timestamp": started,
                         "StatisticValues": status_stats.as_statistic_values(), "Unit": "None"})
            data.append({"MetricName": PERCENT_METRIC, "Dimensions": dimensions, "Timestamp": started,
                         "StatisticValues": percent_stats.as_statistic_values(), "Unit": "Percent"})
        if data:
            moto_access.cloudwatch(METRIC_REGION).put_metric_data(NAMESPACE, data)
