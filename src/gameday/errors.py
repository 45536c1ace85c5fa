"""Domain errors, the failure categories of a game day, and the one map from a category to what it means.

A UsageError is bad input: one line, exit status 2, nothing changed. A ScenarioError is a game day
that did not hold; its `Category` says which kind of failure it was. Everything that reports a
failure (the Allure categories, the summary, the exit status) reads `VERDICTS`, so a category is
named, described and judged in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GamedayError(Exception):
    """Base class for errors the CLI reports as one line."""

    exit_code = 1


class UsageError(GamedayError):
    """Bad input (file, field or argument). Raised before any AWS call is made."""

    exit_code = 2


class Category(StrEnum):
    """The kinds of failure a game day tells apart (the values are what reports and summary.json show)."""

    FAULT_NOT_EFFECTIVE = "fault_not_effective"
    DETECTION_TIMEOUT = "detection_timeout"
    NO_DNS_SHIFT = "no_dns_shift"
    WRONG_REGION = "wrong_region"
    WRITE_FAILED = "write_failed"
    LOST_WRITES = "lost_writes"
    ROLLBACK_FAILURE = "rollback_failure"
    SLO_VIOLATION = "slo_violation"
    BLIND_SPOT = "blind_spot"
    STEADY_STATE = "steady_state"
    STOPPED = "stopped"
    HARNESS_ERROR = "harness_error"

    @classmethod
    def parse(cls, value: str | Category) -> Category:
        """The category named `value`; ValueError naming the known ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown failure category {value!r}; expected one of {known}") from None


@dataclass(frozen=True)
class Verdict:
    """What a category means for a run: the test status (failed: the deployment did not hold; broken:
    the harness could not tell), the process exit status, and the Allure category it lands in."""

    category: Category
    status: str            # "failed" | "broken"
    exit_code: int
    title: str             # the Allure category's name
    description: str       # the Allure category's description


#: Category -> Verdict. Order matters: Allure puts a failure in the first category that matches.
#: Exit status of a run (the highest-ranked among its scenarios, see `run_exit_code`): 0 pass,
#: 1 a verification failed, 2 bad input, 3 refused by a guardrail or a lock (before any change),
#: 4 stopped by a stop condition, 5 a restore failed (an operator must look: `gameday restore`).
VERDICTS: dict[Category, Verdict] = {v.category: v for v in (
    Verdict(Category.FAULT_NOT_EFFECTIVE, "failed", 1, "Fault not effective",
            "the fault was applied but the region kept answering as before"),
    Verdict(Category.DETECTION_TIMEOUT, "failed", 1, "Detection timeout",
            "Route 53 did not report the region unhealthy within the budget"),
    Verdict(Category.NO_DNS_SHIFT, "failed", 1, "No DNS shift",
            "DNS kept answering the failed region within the budget"),
    Verdict(Category.WRONG_REGION, "failed", 1, "Wrong region",
            "a write or read was served by the wrong region"),
    Verdict(Category.WRITE_FAILED, "failed", 1, "Write failed",
            "the surviving region did not acknowledge a write through the global domain"),
    Verdict(Category.LOST_WRITES, "failed", 1, "Lost writes",
            "acknowledged writes missing from a region after recovery"),
    Verdict(Category.ROLLBACK_FAILURE, "failed", 5, "Rollback failure",
            "the fault could not be undone exactly"),
    Verdict(Category.BLIND_SPOT, "failed", 1, "Blind spot",
            "traffic kept flowing to a region whose writes failed: its health check did not see it"),
    Verdict(Category.SLO_VIOLATION, "failed", 1, "SLO violation",
            "a measured figure is outside the SLO set by the deployment or the command line"),
    Verdict(Category.STOPPED, "failed", 4, "Stopped",
            "a stop condition tripped (an alarm, the error rate, a stop file, a signal, the fault's time cap): "
            "the fault was restored at once"),
    Verdict(Category.STEADY_STATE, "failed", 1, "Steady state",
            "the deployment was not healthy, or did not take writes, before any fault"),
    Verdict(Category.HARNESS_ERROR, "broken", 1, "Harness error",
            "the harness itself failed (an uncategorised exception)"),
)}


EXIT_PASS, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_STOPPED, EXIT_RESTORE_FAILED = 0, 1, 2, 3, 4, 5
_EXIT_RANK = (EXIT_RESTORE_FAILED, EXIT_STOPPED, EXIT_FAILED)


#: what an operator looks at first, by failure category (the summary and the report say it)
ACT_ON: dict[Category, str] = {
    Category.FAULT_NOT_EFFECTIVE: "the fault did not change what the region answers: check the fault's "
                                  "target (function, key) and that the health endpoint reads it",
    Category.DETECTION_TIMEOUT: "Route 53 kept the region healthy: check the health check's path, interval, "
                                "failure threshold and that it probes the Health function",
    Category.NO_DNS_SHIFT: "DNS kept answering the failed region: check the failover records' health-check "
                           "association and their TTL",
    Category.WRONG_REGION: "traffic reached a region it should not: check the routing policy and which "
                           "records answer the global domain",
    Category.WRITE_FAILED: "the survivor did not take the write: check its API, Lambda and table in that region",
    Category.LOST_WRITES: "acknowledged writes are missing: check the global table's replication and the "
                          "table version",
    Category.ROLLBACK_FAILURE: "the fault was not undone: run `gameday restore` and check the region by hand",
    Category.SLO_VIOLATION: "a figure is over its SLO: compare it with the SLO below and the timeline",
    Category.STEADY_STATE: "the deployment was not healthy before the fault: fix it before the game day",
    Category.STOPPED: "a stop condition ended the game day: read the stop reason and the alarms",
    Category.BLIND_SPOT: "the health check never saw the region's write path fail: make /health exercise a "
                         "write (the reference deep check) or alarm on the region's write errors",
    Category.HARNESS_ERROR: "gameday could not tell: read the error and the steps (not a verdict on the "
                            "deployment)",
}


def run_exit_code(categories: list[Category | str | None], pytest_code: int) -> int:
    """A run's exit status from its scenarios' categories: a failed restore outranks a stop, which
    outranks any other failure; a run whose tests failed without a category keeps pytest's code."""
    codes = {VERDICTS[Category.parse(c)].exit_code for c in categories if c is not None}
    for code in _EXIT_RANK:
        if code in codes:
            return code
    return pytest_code


def verdict_of(category: Category | str) -> Verdict:
    return VERDICTS[Category.parse(category)]


def categorised(category: Category | str, message: str) -> str:
    """`message` tagged with its category, ``"[detection_timeout] eu-west-1 still healthy ..."``: the tag
    is what the Allure categories match on."""
    return f"[{Category.parse(category).value}] {message}"


class ScenarioError(GamedayError):
    """A game day did not hold; `category` says how. Each probe's timeout and each fault's own
    failure is a subclass with its category."""

    category: Category = Category.HARNESS_ERROR

    def __init__(self, message: str, *, category: Category | str | None = None) -> None:
        super().__init__(message)
        if category is not None:
            self.category = Category.parse(category)

    @property
    def verdict(self) -> Verdict:
        return VERDICTS[self.category]


class ScenarioFailed(ScenarioError, AssertionError):
    """A verification of a game day failed. An AssertionError, so pytest reports the test as failed
    (not broken); the message starts with the category tag."""

    def __init__(self, category: Category | str, message: str) -> None:
        super().__init__(categorised(category, message), category=category)


class FaultNotEffective(ScenarioError):
    """The change was applied but the region still answers as before: not a detection timeout."""

    category = Category.FAULT_NOT_EFFECTIVE


class RollbackFailed(ScenarioError):
    """A fault could not be undone; the journal keeps it for `gameday restore`."""

    category = Category.ROLLBACK_FAILURE


def category_of_exception(exc: BaseException) -> Category:
    """The category a run that ended with `exc` gets: its own if it has one, else a harness error."""
    category = getattr(exc, "category", None)
    if isinstance(category, Category):
        return category
    return Category.HARNESS_ERROR


class ScenarioStopped(ScenarioError):
    """A stop condition tripped while a fault was in place; the fault was restored at once."""

    exit_code = EXIT_STOPPED

    def __init__(self, condition: str, detail: str, at: float) -> None:
        self.condition, self.detail, self.at = condition, detail, at
        super().__init__(f"[stopped] {detail}", category=Category.STOPPED)
