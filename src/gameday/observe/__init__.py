"""Read-only observers: Route 53 health, DNS answers, table reads. They never change anything."""

from gameday.observe.route53 import (
    DetectionTimeout,
    HealthStatus,
    HealthWait,
    Observation,
    Route53HealthProbe,
    apply_rule,
    classify,
    detection_budget,
    health_status,
)

__all__ = [
    "DetectionTimeout", "HealthStatus", "HealthWait", "Observation", "Route53HealthProbe",
    "apply_rule", "classify", "detection_budget", "health_status",
]
