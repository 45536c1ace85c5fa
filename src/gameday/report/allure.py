"""The harness's one door to Allure (the only module that imports allure).

Why one module: allure-pytest calls are no-ops without --alluredir, scenario code should not care, and every
attachment must pass through `scrub` so that no Lambda environment value (other than the key a fault flips)
and no credential ever reaches a report. Phases are timed into a plain run record whether or not Allure is on,
so summary.json has the same figures as the HTML report.

Failure categories. A failure says which kind it was in two ways, both understood by the Allure categories this
module writes: the assertion message starts with ``[category]`` (build it with `categorised`), and/or the test
carries the label ``failure_category`` (set with `set_failure_category`). An exception nobody categorised
(status "broken" in Allure) lands in "Harness error".

Keep calls out of polling loops: one step per phase, attachments at the end of a phase.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import allure

from gameday.errors import VERDICTS, Category, categorised
from gameday.records import Phase, RunRecord

__all__ = ["CATEGORIES", "CATEGORY_IDS", "CATEGORY_LABEL", "SCENARIO_LABEL", "Phase", "RunRecord", "categorised", "category_of"]

# ---------------------------------------------------------------------------------------------------------------
# failure categories (named, described and ordered by gameday.errors.VERDICTS)

#: (category id, title shown in Allure, what it means), in the order Allure matches them.
CATEGORIES: tuple[tuple[str, str, str], ...] = tuple((v.category.value, v.title, v.description)
                                                     for v in VERDICTS.values())
CATEGORY_IDS = tuple(c[0] for c in CATEGORIES)
CATEGORY_LABEL = "failure_category"
SCENARIO_LABEL = "gameday_scenario"
_TAG = re.compile(r"^(?:[A-Za-z_][\w.]*: )?\[(" + "|".join(CATEGORY_IDS) + r")\]")


def category_of(failure: BaseException | str | None) -> str | None:
    """The category tag at the start of a message (or an exception's message, or "Type: message"), else None."""
    if failure is None:
        return None
    text = str(failure) if isinstance(failure, BaseException) else failure
    m = _TAG.match(text.lstrip())
    return m.group(1) if m else None


def _message_regex(category: str) -> str:
    # Full match (Allure 2 uses Java matches()); anchored search (Allure 3 uses JS RegExp.test); same text works.
    return r"^(?:[A-Za-z_][\w.]*: )?\[" + category + r"\][\s\S]*"


def allure2_categories() -> list[dict[str, Any]]:
    """categories.json content (Allure 2 format, also read by Allure 3's classic/allure2 plugins)."""
    out: list[dict[str, Any]] = [
        {"name": v.title, "description": v.description, "messageRegex": _message_regex(v.category.value),
         "matchedStatuses": ["failed", "broken"]} for v in VERDICTS.values()]
    harness = VERDICTS[Category.HARNESS_ERROR]
    out.append({"name": harness.title, "description": "uncategorised exception", "matchedStatuses": [harness.status]})
    return out


def allure3_categories() -> list[dict[str, Any]]:
    """The same categories as Allure 3 config rules (the awesome plugin reads rules from the config only)."""
    rules = []
    for v in VERDICTS.values():
        cid = v.category.value
        matchers: list[dict[str, Any]] = [
            {"statuses": ["failed", "broken"], "labels": {CATEGORY_LABEL: f"^{cid}$"}},
            {"statuses": ["failed", "broken"], "message": _message_regex(cid)},
        ]
        if v.status == "broken":  # the catch-all: a broken test nobody categorised
            matchers.append({"statuses": ["broken"]})
        rules.append({"id": cid, "name": v.title, "matchers": matchers, "expand": True})
    return rules


# ---------------------------------------------------------------------------------------------------------------
# scrubbing

REDACTED = "<redacted>"
_flipped_keys: set[str] = {"status"}  # the Health function's key the flip-health fault changes
_known_secrets: set[str] = set()       # secret-named values seen while scrubbing; redacted from free text afterwards

_ENV_CONTAINER = re.compile(r"^(variables|env|environment|lambda_env|.*_env|.*_environment|.*Environment)$", re.I)
_SECRET_KEY = re.compile(
    r"(secret|token|passw|credential|access_?key|session_?key|private_?key|api_?key|authorization|signature|"
    r"cookie)", re.I)
_TEXT_PATTERNS = (
    # AWS access key ids
    re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    # key=value / key: value / "key": "value" where the key names a credential
    re.compile(r"(?i)((?:secret|token|passw(?:or)?d?|credential|access_?key(?:_id)?|session_?key|private_?key|"
               r"api_?key|authorization|x-amz-security-token|signature)[\w-]*[\"']?\s*[:=]\s*[\"']?)"
               r"([^\s\"',;&}]+)"),
    # a bare 40-character AWS-secret-like token (mixed case base64, not a hex digest)
    re.compile(r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[0-9/+])"
               r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
)


def set_flipped_keys(*keys: str) -> None:
    """Declare which Lambda environment keys faults flip; their values stay visible in reports (default: status)."""
    _flipped_keys.clear()
    _flipped_keys.update(keys)


def flipped_keys() -> frozenset[str]:
    return frozenset(_flipped_keys)


def scrub_text(text: str) -> str:
    """Redact credential-looking substrings and any Lambda environment value seen earlier by `scrub`."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    key_value = _TEXT_PATTERNS[1]
    text = _TEXT_PATTERNS[0].sub(REDACTED, text)
    text = key_value.sub(lambda m: m.group(1) + REDACTED, text)
    text = _TEXT_PATTERNS[2].sub(REDACTED, text)
    return text


def scrub(obj: Any, keep: frozenset[str] | set[str] | None = None) -> Any:
    """A copy of `obj` safe to publish.

    - a Lambda environment (a mapping under a key like ``Variables``, ``Environment``, ``env``, ``*_env``) keeps
      only the flipped keys' values (`set_flipped_keys`, or `keep`); every other value becomes ``<redacted>``;
    - any value under a credential-like key (secret, token, password, access key, ...) becomes ``<redacted>``,
      and is remembered so that `scrub_text` redacts it from free text (logs, messages) later in this process;
    - strings are passed through `scrub_text` (AWS key ids, ``secret=...``, 40-char secret-like tokens).
    """
    keep = frozenset(_flipped_keys if keep is None else keep)
    return _scrub(obj, keep, in_env=False)


def _register_secret(value: Any) -> None:
    if isinstance(value, str) and len(value) >= 4:
        _known_secrets.add(value)


def _scrub(obj: Any, keep: frozenset[str], in_env: bool) -> Any:
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            skey = str(key)
            if in_env and not isinstance(value, (Mapping, list, tuple)):
                if skey in keep:
                    out[key] = _scrub(value, keep, False)
                else:
                    if _SECRET_KEY.search(skey):  # e.g. API_TOKEN: also redact it from free text from now on
                        _register_secret(value)
                    out[key] = REDACTED
            elif _SECRET_KEY.search(skey) and not isinstance(value, (Mapping, list, tuple)) and skey not in keep:
                _register_secret(value)
                out[key] = REDACTED
            else:
                out[key] = _scrub(value, keep, in_env=bool(_ENV_CONTAINER.match(skey)) or
                                  (in_env and isinstance(value, Mapping)))
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_scrub(v, keep, in_env=False) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, bytes):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _scrub(dataclasses.asdict(obj), keep, in_env)
    return obj


# ---------------------------------------------------------------------------------------------------------------
# phases (timed into the run record, gameday.records.RunRecord, whether or not Allure is on)

_current: contextvars.ContextVar[RunRecord | None] = contextvars.ContextVar("gameday_run_record", default=None)


@contextlib.contextmanager
def recording(record: RunRecord) -> Iterator[RunRecord]:
    """Make `record` the one `phase`, `label_scenario` and `set_failure_category` write to, inside the block."""
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def current_record() -> RunRecord | None:
    return _current.get()


@contextlib.contextmanager
def phase(name: str, record: RunRecord | None = None) -> Iterator[Phase]:
    """An Allure step named `name`, timed as a phase of the run record (start/end/duration and outcome,
    set in a `finally`; the error scrubbed). Yields the phase, to which the caller may add figures,
    e.g. ``entry["budget_s"] = 3.0``. Outside a recording the phase is timed but kept nowhere."""
    target = record if record is not None else _current.get()
    timed = target if target is not None else RunRecord()
    with timed.phase(name, describe=scrub_text) as entry, allure.step(name):
        yield entry


# ---------------------------------------------------------------------------------------------------------------
# attachments and labels


def attach_json(name: str, obj: Any) -> None:
    """Attach `obj` (scrubbed) as pretty JSON."""
    body = json.dumps(scrub(obj), indent=2, sort_keys=True, default=str)
    allure.attach(body, name=name, attachment_type=allure.attachment_type.JSON)


def attach_text(name: str, text: str) -> None:
    """Attach plain text (scrubbed)."""
    allure.attach(scrub_text(str(text)), name=name, attachment_type=allure.attachment_type.TEXT)


def attach_png(name: str, path_or_bytes: str | os.PathLike[str] | bytes) -> None:
    """Attach a PNG image (a path or the bytes), e.g. a chart from gameday.report.charts."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"attachment {name!r} is not a PNG image")
    allure.attach(data, name=name, attachment_type=allure.attachment_type.PNG)


def attach_metrics(name: str, metrics: Mapping[str, Any]) -> None:
    """Attach a metrics table both as JSON and as an HTML table (readable in the report without opening)."""
    clean = scrub(dict(metrics))
    rows = "".join(f"<tr><th style='text-align:left'>{_html(k)}</th><td>{_html(_fmt(v))}</td></tr>"
                   for k, v in clean.items())
    allure.attach(f"<table>{rows}</table>", name=name, attachment_type=allure.attachment_type.HTML)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _html(value: Any) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe_html(html: str) -> None:
    """Set the running test's description (HTML, scrubbed): Allure shows it above the steps and attachments,
    so what leads it (e.g. gameday.report.overview's verdict, diagnosis and figures) is read first."""
    allure.dynamic.description_html(scrub_text(html))


def label_scenario(epic: str, feature: str, story: str, severity: str = "critical",  # noqa: PLR0917 (Allure's label order)
                   failed_region: str | None = None, survivor: str | None = None,
                   title: str | None = None) -> None:
    """Epic/feature/story/severity labels plus the regions as parameters (shown and filterable in Allure)."""
    allure.dynamic.epic(epic)
    allure.dynamic.feature(feature)
    allure.dynamic.story(story)
    allure.dynamic.severity(getattr(severity, "value", severity))
    if title:
        allure.dynamic.title(title)
    for key, value in (("failed_region", failed_region), ("survivor", survivor)):
        if value is not None:
            allure.dynamic.label(key, value)
            allure.dynamic.parameter(key, value)
    record = _current.get()
    if record is not None and record.scenario:
        allure.dynamic.label(SCENARIO_LABEL, record.scenario)  # ties the test to its summary row
    if record is not None:
        record.labels.update(epic=epic, feature=feature, story=story, severity=str(severity),
                             failed_region=failed_region, survivor=survivor)


def set_failure_category(category: Category | str) -> None:
    """Mark the running test's failure kind (label ``failure_category``), so it lands in that Allure category."""
    known = Category.parse(category)
    allure.dynamic.label(CATEGORY_LABEL, known.value)
    record = _current.get()
    if record is not None and record.category is None:
        record.category = known


# ---------------------------------------------------------------------------------------------------------------
# results-dir files (written once per run; safe to call from every xdist worker)


def _atomic_write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prop_escape(text: str, key: bool = False) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in out)


def environment_properties(deployment: Mapping[str, Any], *, health_check_interval_s: float = 10,
                           failure_threshold: int = 3, gameday_version: str | None = None) -> dict[str, str]:
    """The environment.properties entries for a deployment description."""
    table = deployment.get("table") or {}
    regions = [r.get("name", "?") if isinstance(r, Mapping) else str(r) for r in deployment.get("regions") or []]
    return {
        "target": str(deployment.get("target", "?")),
        "regions": ", ".join(regions),
        "table.version": str(table.get("version", "?")),
        "routing": str(deployment.get("routing", "?")),
        "health_check.interval_s": str(health_check_interval_s),
        "health_check.failure_threshold": str(failure_threshold),
        "time_scale": str(deployment.get("time_scale", 1.0)),
        "gameday.version": gameday_version or _gameday_version(),
    }


def _gameday_version() -> str:
    try:
        from importlib.metadata import version
        return version("gameday")
    except Exception:  # noqa: BLE001 - not installed as a distribution: read the checkout's pyproject.toml
        try:
            import tomllib
            pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
            return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
        except Exception:  # noqa: BLE001
            return "unknown"


def write_environment(alluredir: str | os.PathLike[str], props: Mapping[str, Any]) -> Path:
    """Write `<alluredir>/environment.properties` (values scrubbed). Idempotent and atomic."""
    lines = [f"{_prop_escape(str(k), key=True)}={_prop_escape(scrub_text(str(v)))}" for k, v in props.items()]
    path = Path(alluredir) / "environment.properties"
    _atomic_write(path, "\n".join(lines) + "\n")
    return path


def write_categories(alluredir: str | os.PathLike[str]) -> Path:
    """Write `<alluredir>/categories.json` (the failure categories). Idempotent and atomic."""
    path = Path(alluredir) / "categories.json"
    _atomic_write(path, json.dumps(allure2_categories(), indent=2) + "\n")
    return path


def is_xdist_worker(config: Any) -> bool:
    """True inside a pytest-xdist worker (write run-level files from the controller only)."""
    return hasattr(config, "workerinput")


def write_run_metadata(config: Any, props: Mapping[str, Any]) -> Path | None:
    """From `pytest_sessionfinish`: write environment.properties and categories.json into --alluredir, once
    (on the xdist controller or a plain run; workers skip). Returns the alluredir, or None when not reporting."""
    alluredir = config.getoption("--alluredir", None) if hasattr(config, "getoption") else None
    if not alluredir or is_xdist_worker(config):
        return None
    write_environment(alluredir, props)
    write_categories(alluredir)
    return Path(alluredir)
