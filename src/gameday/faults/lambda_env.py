"""Read-merge-write of single Lambda environment variables, and the wait for LastUpdateStatus.

Why: UpdateFunctionConfiguration replaces the WHOLE environment map, so changing one
key means reading the map, changing that key and writing the map back, and undoing it
means the same with the original value (or deleting the key if it was absent). The
write carries the RevisionId that was read, so a concurrent change elsewhere makes
the write fail (PreconditionFailed) and we re-read instead of clobbering it. A second
update while one is in progress fails with ResourceConflictException: retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from gameday import timing
from gameday.errors import GamedayError
from gameday.faults.journal_file import account_of_arn, fingerprint_matches, note_function_arn

UPDATE_BUDGET_S = 120.0  # AWS: an environment update is Successful within seconds; waiters allow minutes
RETRYABLE_CODES = ("ResourceConflictException", "PreconditionFailedException", "TooManyRequestsException")


class LambdaUpdateFailed(GamedayError):
    """LastUpdateStatus became Failed, or never became Successful within the budget."""


def _error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def _retryable(exc: BaseException) -> bool:
    return _error_code(exc) in RETRYABLE_CODES


def environment_of(config: dict[str, Any]) -> dict[str, str]:
    return dict((config.get("Environment") or {}).get("Variables") or {})


class EnvironmentUnreadable(GamedayError):
    """GetFunctionConfiguration returned Environment.Error: the variables cannot be decrypted."""


class ForeignFunction(GamedayError):
    """A journalled function belongs to another account than the caller's: never touched."""


def read_configuration(lam: Any, function: str) -> dict[str, Any]:
    """GetFunctionConfiguration; the ARN is noted for the journal (entries are keyed by ARN).

    Refuses (EnvironmentUnreadable) a configuration whose Environment carries an Error instead of
    Variables (a customer KMS key disabled or denied): a merged write would replace every variable
    with the few being changed, and a restore would leave them empty."""
    config = lam.get_function_configuration(FunctionName=function)
    arn = config.get("FunctionArn")
    region = getattr(getattr(lam, "meta", None), "region_name", None)
    if arn and region:
        note_function_arn(str(region), function, str(arn))
    error = (config.get("Environment") or {}).get("Error")
    if error:
        raise EnvironmentUnreadable(
            f"{function}: its environment cannot be read ({error.get('ErrorCode', 'Error')}: "
            f"{error.get('Message', 'no message')}); nothing was changed (writing a merged map would wipe "
            f"every variable)")
    return config


def wait_until_updated(lam: Any, function: str, budget_s: float = UPDATE_BUDGET_S,
                       poll_s: float = 1.0) -> dict[str, Any]:
    """Poll GetFunctionConfiguration until LastUpdateStatus is Successful; Failed raises at once."""

    def status(config: dict[str, Any]) -> str:
        # A function that was never updated may report no LastUpdateStatus at all: nothing pending.
        return config.get("LastUpdateStatus") or "Successful"

    # A quick first look (most updates are done within milliseconds), backing off to poll_s.
    poll = timing.measured_poll(lambda: read_configuration(lam, function), until=lambda c: status(c) != "InProgress",
                                poll_s=poll_s, budget_s=budget_s, retry_on=_retryable,
                                wait=wait_exponential(multiplier=min(poll_s, 0.05), max=poll_s))
    config = poll.value
    if not poll.reached or config is None:
        raise LambdaUpdateFailed(
            f"{function}: LastUpdateStatus not Successful after {budget_s:.1f} s") from poll.error
    if status(config) != "Successful":
        reason = config.get("LastUpdateStatusReason") or "no reason given"
        raise LambdaUpdateFailed(f"{function}: LastUpdateStatus {status(config)}: {reason}")
    return config


def merge_environment(lam: Any, function: str, changes: dict[str, str | None], *,
                      budget_s: float = UPDATE_BUDGET_S, poll_s: float = 1.0,
                      on_read: Callable[[dict[str, str]], None] | None = None,
                      on_write: Callable[[], None] | None = None,
                      ) -> tuple[dict[str, str], dict[str, str]]:
    """Set (value) or delete (None) the given keys, keeping every other variable.

    `on_read(env)` runs after each read and BEFORE the write it leads to (the journal
    hook: record the original before changing it). Returns (environment before,
    environment written). `on_write()` runs right before each write request. Waits for
    Successful afterwards.
    """

    def attempt_once() -> tuple[dict[str, str], dict[str, str]]:
        config = wait_until_updated(lam, function, budget_s=budget_s, poll_s=poll_s)
        before = environment_of(config)
        if on_read is not None:
            on_read(before)
        after = dict(before)
        for key, value in changes.items():
            if value is None:
                after.pop(key, None)
            else:
                after[key] = value
        if after != before:
            kwargs: dict[str, Any] = {"FunctionName": function, "Environment": {"Variables": after}}
            if config.get("RevisionId"):
                kwargs["RevisionId"] = config["RevisionId"]
            if on_write is not None:
                on_write()
            lam.update_function_configuration(**kwargs)
        return before, after

    # a retried write (a conflict re-reads first), not a wait: bounded by the same budget
    retrying = Retrying(
        stop=stop_after_delay(budget_s),
        wait=wait_exponential(multiplier=min(poll_s, 0.05), max=poll_s),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    before, after = retrying(attempt_once)
    wait_until_updated(lam, function, budget_s=budget_s, poll_s=poll_s)
    return before, after


def function_to_restore(target: dict[str, Any], clients: Any) -> str:
    """The journalled function's ARN (its name for entries from before ARNs were journalled);
    ForeignFunction when the ARN is another account's than the caller's."""
    arn = target.get("function_arn")
    if not arn:
        return str(target["function"])
    account = account_of_arn(str(arn))
    caller = clients.account_id()
    if account != caller:
        raise ForeignFunction(f"{arn} belongs to account {account}, but these credentials are account {caller}: "
                              f"not restored (switch to the account the fault was made in)")
    return str(arn)


def restore_entry(entry: dict[str, Any], clients: Any, budget_s: float = UPDATE_BUDGET_S,
                  poll_s: float = 1.0) -> str:
    """Undo a journalled environment change exactly: put back each changed key's original
    value, or delete it if it was absent; other variables are left as they are now.

    Returns a one-line detail (values of the changed keys only, never the whole map).
    """
    target = entry["target"]
    function = function_to_restore(target, clients)
    lam = clients.lambda_(target["region"])
    original = {key: (v.get("value") if v.get("present") else None)
                for key, v in entry["before"]["variables"].items()}
    current = environment_of(wait_until_updated(lam, function, budget_s=budget_s, poll_s=poll_s))
    after_fp = (entry.get("after") or {}).get("fingerprint")
    before_fp = entry["before"].get("fingerprint")
    drift = not (fingerprint_matches(current, after_fp) or fingerprint_matches(current, before_fp))
    already = all((key not in current) if value is None else current.get(key) == value
                  for key, value in original.items())
    if not already:
        merge_environment(lam, function, original, budget_s=budget_s, poll_s=poll_s)
        final = environment_of(wait_until_updated(lam, function, budget_s=budget_s, poll_s=poll_s))
        wrong = [key for key, value in original.items()
                 if ((key in final) if value is None else final.get(key) != value)]
        if wrong:
            raise LambdaUpdateFailed(f"{function}: after restore {', '.join(wrong)} still differ from the original")
    parts = [f"{key} deleted (absent before)" if value is None else f"{key}={value!r} put back"
             for key, value in original.items()]
    detail = "already as before" if already else "; ".join(parts)
    if drift:
        detail += "; drift: other variables changed since the fault was injected (left as they are)"
    return detail
