"""IAM policy documents evaluated against one request, as AWS's policy evaluation logic does.

A statement applies when its Action (or NotAction) matches the action, its Resource (or NotResource)
matches the resource and every Condition holds. Across documents: an applicable Deny wins over
everything, else an applicable Allow allows, else the request is implicitly denied (NEUTRAL here;
the caller turns it into AccessDenied).

Matching as AWS documents it: `*` and `?` wildcards; actions compare case-insensitively, resources
case-sensitively; policy variables (`${aws:username}`, `${*}`, `${?}`, `${$}`) are substituted from
the request context; condition keys compare case-insensitively; a key missing from the request makes
a positive operator false and a negated one true (`...IfExists` makes a missing key true).

What AWS would refuse to store (no Resource element, an unknown condition operator, an unparsable
document) is evaluated the way that is hardest on a caller relying on it: such an Allow allows
nothing and such a Deny denies. moto accepts documents AWS refuses, so this can matter.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"          # an explicit Deny applies
    NEUTRAL = "neutral"    # nothing applies: implicitly denied


@dataclass(frozen=True)
class Request:
    """What one authorisation decides on. `context` holds the condition keys (any case) and their
    values: a string, or a list for multivalued keys."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def value(self, key: str) -> list[str] | None:
        """The context values of `key` (case-insensitive), or None when the request has no such key."""
        lowered = _lowered(self.context)
        if key.lower() not in lowered:
            return None
        found = lowered[key.lower()]
        if isinstance(found, (list, tuple)):
            return [str(v) for v in found]
        return [str(found)]


def _lowered(context: Mapping[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in context.items()}


class _Unevaluable(Exception):
    """A statement this evaluator cannot decide (see the module docstring for how it counts)."""


# --- documents ---

@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Any:
    return json.loads(text)


def statements(document: Any) -> list[Any]:
    """The statements of a policy document given as JSON text or as a parsed dict (moto stores
    both: API calls keep the text, CloudFormation the parsed template value). An unparsable document
    yields one statement that denies everything (hardest reading)."""
    try:
        parsed = _parsed(document) if isinstance(document, str) else document
    except ValueError:
        return [{"Effect": "Deny", "Action": "*", "Resource": "*", "_unparsable": True}]
    if not isinstance(parsed, Mapping):
        return [{"Effect": "Deny", "Action": "*", "Resource": "*", "_unparsable": True}]
    found = parsed.get("Statement", [])
    if isinstance(found, Mapping):
        return [found]
    return list(found) if isinstance(found, list) else []


def evaluate(documents: Iterable[Any], request: Request) -> Decision:
    """ALLOW, DENY (an explicit Deny applies) or NEUTRAL over a set of documents."""
    allowed = False
    for document in documents:
        for statement in statements(document):
            if not isinstance(statement, Mapping):
                continue
            effect = str(statement.get("Effect", ""))
            try:
                applies = _applies(statement, request)
            except _Unevaluable:
                applies = effect != "Allow"  # an undecidable Allow allows nothing; a Deny denies
            if not applies:
                continue
            if effect == "Deny":
                return Decision.DENY
            if effect == "Allow":
                allowed = True
    return Decision.ALLOW if allowed else Decision.NEUTRAL


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if statement.get("_unparsable"):
        return True
    if "Action" in statement:
        if not any(_matches(p, request.action, ignore_case=True) for p in _values(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_matches(p, request.action, ignore_case=True) for p in _values(statement["NotAction"])):
            return False
    else:
        raise _Unevaluable("no Action or NotAction")
    if "Resource" in statement:
        if not any(_resource_matches(p, request) for p in _values(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_resource_matches(p, request) for p in _values(statement["NotResource"])):
            return False
    else:
        raise _Unevaluable("no Resource or NotResource")
    condition = statement.get("Condition")
    if condition:
        if not isinstance(condition, Mapping):
            raise _Unevaluable("Condition is not an object")
        return all(_condition_holds(op, keys, request) for op, keys in condition.items())
    return True


def _values(element: Any) -> list[str]:
    if isinstance(element, list):
        return [str(v) for v in element]
    return [str(element)]


# --- wildcards and policy variables ---

@functools.lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "\x00", "?": "\x01", "$": "$"}  # ${*} and ${?} are literal characters, not wildcards


def _substitute(text: str, request: Request) -> str | None:
    """`text` with its policy variables replaced; None when one names a key the request lacks
    (AWS: the element then matches nothing)."""
    if "${" not in text:
        return text
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in _ESCAPES:
            return _ESCAPES[name]
        key, _, default = name.partition(",")
        values = request.value(key.strip())
        if values:
            return values[0].replace("*", "\x00").replace("?", "\x01")
        if default:
            return default.strip().strip("'")
        missing = True
        return ""

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


def _literal_aware_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Wildcard match where \\x00 and \\x01 stand for a literal * and ? (from ${*}, ${?} or a
    substituted value)."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "\x00":
            parts.append(re.escape("*"))
        elif char == "\x01":
            parts.append(re.escape("?"))
        else:
            parts.append(re.escape(char))
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch("".join(parts), value, flags) is not None


def _resource_matches(pattern: str, request: Request) -> bool:
    if "${" not in pattern:
        return _matches(pattern, request.resource)
    substituted = _substitute(pattern, request)
    return substituted is not None and _literal_aware_match(substituted, request.resource)


# --- conditions ---

def _condition_holds(operator: str, keys: Any, request: Request) -> bool:
    if not isinstance(keys, Mapping):
        raise _Unevaluable(f"{operator}: not an object")
    quantifier, _, name = operator.rpartition(":")
    quantifier = quantifier.lower()
    if_exists = name.endswith("IfExists")
    base = name[: -len("IfExists")] if if_exists else name
    test = _OPERATORS.get(base.lower())
    if test is None and base.lower() != "null":
        raise _Unevaluable(f"unknown condition operator {operator}")
    negated = base.lower() in _NEGATED
    for key, policy_values in keys.items():
        wanted = []
        for raw in _values(policy_values):
            substituted = _substitute(raw, request)
            if substituted is None:
                return False
            wanted.append(substituted)
        actual = request.value(str(key))
        if base.lower() == "null":
            absent = actual is None or actual == []
            if not any((w.lower() == "true") == absent for w in wanted):
                return False
            continue
        assert test is not None
        if actual is None or actual == []:
            if quantifier == "forallvalues":
                continue                      # vacuously true
            if if_exists or (negated and quantifier != "foranyvalue"):
                continue
            return False
        matched = [any(test(value, w) for w in wanted) for value in actual]
        if quantifier == "forallvalues":
            ok = all((not m) if negated else m for m in matched)
        elif negated:
            ok = not any(matched) if quantifier != "foranyvalue" else not all(matched)
        else:
            ok = any(matched)
        if not ok:
            return False
    return True


def _string_like(value: str, pattern: str) -> bool:
    return _literal_aware_match(pattern, value)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise _Unevaluable(f"not a number: {text}") from exc


def _date(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Unevaluable(f"not a date: {text}") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


def _bool(value: str, wanted: str) -> bool:
    return value.lower() == wanted.lower()


def _ip_in(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _arn_like(value: str, pattern: str) -> bool:
    """ArnLike: the six colon-separated parts compared one by one, each with wildcards."""
    value_parts = value.split(":", 5)
    pattern_parts = pattern.split(":", 5)
    if len(value_parts) != 6 or len(pattern_parts) != 6:
        return False
    return all(_literal_aware_match(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


_OPERATORS: dict[str, Any] = {
    "stringequals": lambda v, w: v == w,
    "stringnotequals": lambda v, w: v == w,
    "stringequalsignorecase": lambda v, w: v.lower() == w.lower(),
    "stringnotequalsignorecase": lambda v, w: v.lower() == w.lower(),
    "stringlike": _string_like,
    "stringnotlike": _string_like,
    "numericequals": lambda v, w: _number(v) == _number(w),
    "numericnotequals": lambda v, w: _number(v) == _number(w),
    "numericlessthan": lambda v, w: _number(v) < _number(w),
    "numericlessthanequals": lambda v, w: _number(v) <= _number(w),
    "numericgreaterthan": lambda v, w: _number(v) > _number(w),
    "numericgreaterthanequals": lambda v, w: _number(v) >= _number(w),
    "dateequals": lambda v, w: _date(v) == _date(w),
    "datenotequals": lambda v, w: _date(v) == _date(w),
    "datelessthan": lambda v, w: _date(v) < _date(w),
    "datelessthanequals": lambda v, w: _date(v) <= _date(w),
    "dategreaterthan": lambda v, w: _date(v) > _date(w),
    "dategreaterthanequals": lambda v, w: _date(v) >= _date(w),
    "bool": _bool,
    "ipaddress": _ip_in,
    "notipaddress": _ip_in,
    "arnequals": _arn_like,
    "arnlike": _arn_like,
    "arnnotequals": _arn_like,
    "arnnotlike": _arn_like,
}
# The negated operators: true when no policy value matches (their table entry is the positive test).
_NEGATED = frozenset({
    "stringnotequals", "stringnotequalsignorecase", "stringnotlike", "numericnotequals", "datenotequals",
    "notipaddress", "arnnotequals", "arnnotlike",
})
