"""One time scale for every AWS-timed behaviour of the local cloud.

scale 0.01 turns a 30 s health-check interval into 0.3 s. Network timeouts are
scaled too but never below a floor, so a loaded 2-core CI machine does not turn
a slow loopback answer into a spurious failure: under a game day's load the data
plane's answers queue, and a health check that fails by itself before the fault
makes detection read early. The floor stays below AWS's own limits (a checker
allows 4 s to connect and 2 s to answer), so it is never more lenient than AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEOUT_FLOOR_S = 2.0


@dataclass(frozen=True)
class TimeScale:
    factor: float = 0.01

    def __post_init__(self) -> None:
        if not (0 < self.factor <= 1):
            raise ValueError(f"time scale must be in (0, 1], got {self.factor}")

    def seconds(self, aws_seconds: float) -> float:
        """Local seconds for a duration that AWS measures as `aws_seconds`."""
        return aws_seconds * self.factor

    def timeout(self, aws_seconds: float) -> float:
        """A scaled network timeout, never below TIMEOUT_FLOOR_S."""
        return max(self.seconds(aws_seconds), TIMEOUT_FLOOR_S)
