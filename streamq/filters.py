"""Lambda event-filter patterns, matched against DynamoDB stream records.

Pure: no boto3, no I/O.  Used by ``streamq refire``'s pre-flight check (would the
trigger's ``FilterCriteria`` pass the MODIFY record a refire produces, and if not,
which pattern drops it and why) and by the sandbox poller that emulates the trigger.

Sources (AWS documentation, read for this module)
-------------------------------------------------
* Lambda Developer Guide, "Control which events Lambda sends to your function"
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html
  (the filter rule syntax table; filters are ORed; 5 filters per event source
  mapping by default, up to 10 with a quota increase; Exists matches leaf nodes only;
  "for numbers, Lambda also uses string representation ... 300, 300.0, and 3.0e2 are
  not considered equal").
* Lambda Developer Guide, "Using event filtering with a DynamoDB event source"
  https://docs.aws.amazon.com/lambda/latest/dg/with-ddb-filtering.html
  (the Keys / NewImage / Boolean / Exists examples, the JSON-format table, and the
  numeric note below).
* Lambda API Reference, ``Filter`` (``Pattern``: length 0..4096) and ``FilterCriteria``
  https://docs.aws.amazon.com/lambda/latest/api/API_Filter.html
* DynamoDB Developer Guide, "Tutorial #2: Using filters to process some events with
  DynamoDB and Lambda" (Streams.Lambda.Tutorial2): eventName is a metadata property,
  OR across patterns, and "numbers in DynamoDB are stored as strings".
* Lambda says it "supports the Amazon EventBridge rules and uses the same syntax", so
  edge cases the Lambda pages leave open follow EventBridge's "Comparison operators for
  use in event patterns" page and the open-source matcher behind it, aws/event-ruler
  (README and ``JsonRuleCompiler``): empty arrays and empty objects are invalid, an
  operator object has exactly one key, ``$or`` needs an array of at least two objects,
  anything-but lists are all strings or all numbers, numeric ranges are a lower bound
  and/or an upper bound (lower bound first).

What AWS documents, and what this module therefore does
-------------------------------------------------------
* **Numeric operators never match DynamoDB attribute values.**  with-ddb-filtering:
  "DynamoDB event filtering doesn't support the use of numeric operators (numeric
  equals and numeric range). Even if items in your table are stored as numbers, these
  parameters are converted to strings in the JSON record object."  A stream record
  carries ``{"N": "5"}``; ``numeric`` only matches JSON numbers (EventBridge: "only
  work with values that are JSON numbers"), so ``{"N": [{"numeric": [">", 1]}]}``
  never matches.  Exact matching is typed too: ``{"N": ["101"]}`` (AWS's own example)
  matches, ``{"N": [101]}`` does not.  :func:`lint_pattern` warns about both.
* Exact number matching uses the number's representation: ``300`` does not equal
  ``300.0``.  Limitation: Python's JSON decoder turns ``3.0e2`` into ``300.0``, so that
  pair compares equal here although AWS says it does not.
* ``exists`` only looks at leaf values: ``{"NewImage": {"attr": [{"exists": true}]}}``
  never matches because ``attr`` is ``{"S": ...}``, an object; ``{"exists": false}``
  on an object node matches.  A JSON ``null`` is a present leaf.
* Arrays in the record: a leaf array matches if any element matches; arrays of objects
  are "crushed out" (``{"L": {"S": [...]}}`` reaches into a DynamoDB list), and all
  fields of one pattern object must match within the same array element (event-ruler's
  array-consistent matching).
* ``anything-but`` needs the field to be present and matches a value that the positive
  rule would not match (so ``{"anything-but": ["x"]}`` matches the number 5).
* Duplicate keys: AWS's own Boolean example repeats ``"dynamodb"`` at the top level to
  AND a NewImage and an OldImage condition.  A plain ``json.loads`` would keep only the
  second one; :func:`parse_pattern` merges duplicate object keys (a repeated leaf keeps
  the last value, as event-ruler does).
* The DynamoDB page notes "DynamoDB event source mappings only support filtering on the
  dynamodb key", yet the general page, the DynamoDB tutorial and the CDK examples filter
  on metadata such as ``eventName``; this matcher matches any top-level field of the
  record as given.
* Operators: the Lambda table lists null, empty, equals, equals-ignore-case, and, or,
  ``$or``, anything-but (list), numeric equals / range, exists true / false, prefix and
  suffix.  EventBridge also has wildcard, cidr, prefix/suffix with equals-ignore-case
  and anything-but with prefix/suffix/equals-ignore-case/wildcard; EventBridge Pipes,
  the sibling service, documents the anything-but variants and wildcard as unsupported.
  ``anything-but`` with ``prefix``/``suffix`` takes one string or a list of strings
  (event-ruler's README, "Anything-but prefix list"; a value with any of them is
  excluded).
  They are matched here (a live trigger holding one must not make the pre-flight fail)
  and :func:`lint_pattern` flags them as not documented for Lambda.
* Limits: a pattern is at most 4096 characters; a ``FilterCriteria`` holds at most 5
  filters by default (10 with a quota increase); a record passes if any filter matches,
  and records a filter drops from a stream are skipped, never retried.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from .inputs import nesting

__all__ = [
    "DEFAULT_MAX_FILTERS",
    "LAMBDA_DOCUMENTED_OPERATORS",
    "MAX_FILTERS_WITH_QUOTA",
    "MAX_PATTERN_DEPTH",
    "MAX_PATTERN_LENGTH",
    "OPERATORS",
    "STREAM_EVENT_NAMES",
    "FilterPatternError",
    "evaluate_criteria",
    "event_name_pattern",
    "explain_mismatch",
    "lint_pattern",
    "matches",
    "parse_pattern",
    "validate_criteria",
    "validate_pattern",
]

MAX_PATTERN_LENGTH: Final = 4096
#: How deep a pattern's JSON may nest for streamq to evaluate it. 4096 characters hold
#: about 800 levels, and the matcher, the validator and the linter recurse per level.
#: A DynamoDB item nests at most 32 levels (DynamoDB Developer Guide, "Service, account,
#: and table quotas"), two JSON levels each in a stream record ({"M": {name: ...}}), so a
#: record's leaves sit at most about 70 levels deep: a deeper pattern can match none.
MAX_PATTERN_DEPTH: Final = 100
DEFAULT_MAX_FILTERS: Final = 5
MAX_FILTERS_WITH_QUOTA: Final = 10
STREAM_EVENT_NAMES: Final = ("INSERT", "MODIFY", "REMOVE")

OPERATORS: Final = frozenset(
    {
        "anything-but",
        "cidr",
        "equals-ignore-case",
        "exists",
        "numeric",
        "prefix",
        "suffix",
        "wildcard",
    }
)
LAMBDA_DOCUMENTED_OPERATORS: Final = frozenset(
    {"anything-but", "equals-ignore-case", "exists", "numeric", "prefix", "suffix"}
)
OR_KEY: Final = "$or"

# Fields of a DynamoDB stream record as Lambda delivers it.
_RECORD_FIELDS: Final = (
    "awsRegion",
    "dynamodb",
    "eventID",
    "eventName",
    "eventSource",
    "eventSourceARN",
    "eventVersion",
    "userIdentity",
)
_IMAGE_KEYS: Final = ("Keys", "NewImage", "OldImage")
_LOWER_OPS: Final = (">", ">=")
_UPPER_OPS: Final = ("<", "<=")


class FilterPatternError(ValueError):
    """An invalid filter pattern; the message says what is wrong and where."""


class _Missing:
    """The value at a path the record does not have."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


# --------------------------------------------------------------------------- parsing


def parse_pattern(text: str) -> dict[str, Any]:
    """Decode a ``Filter.Pattern`` string and validate its syntax.

    Duplicate object keys are merged (AWS's Boolean example relies on it).
    Raises :class:`FilterPatternError` naming the problem and its place.
    """
    if not isinstance(text, str):
        raise FilterPatternError(f"pattern must be a string, got {type(text).__name__}")
    if len(text) > MAX_PATTERN_LENGTH:
        raise FilterPatternError(
            f"pattern is {len(text)} characters; Lambda allows at most {MAX_PATTERN_LENGTH}"
        )
    if not text.strip():
        raise FilterPatternError("pattern is empty; it must be a JSON object")
    depth = nesting(text, stop_above=MAX_PATTERN_DEPTH)
    if depth > MAX_PATTERN_DEPTH:
        raise FilterPatternError(
            f"pattern nests more than {MAX_PATTERN_DEPTH} levels deep; streamq evaluates "
            f"patterns up to {MAX_PATTERN_DEPTH} levels (a DynamoDB stream record's values "
            "nest at most about 70)"
        )
    try:
        value = json.loads(text, object_pairs_hook=_merge_pairs, parse_constant=_bad_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise FilterPatternError("pattern nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise FilterPatternError(
            f"pattern is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    validate_pattern(value)
    return value  # type: ignore[no-any-return]


def _bad_constant(name: str) -> Any:
    raise FilterPatternError(f"pattern is not valid JSON: {name} is not a JSON number")


def _merge_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            out[key] = _merge_duplicate(key, out[key], value)
        else:
            out[key] = value
    return out


def _merge_duplicate(key: str, old: Any, new: Any) -> Any:
    if key == OR_KEY:
        raise FilterPatternError('"$or" appears twice in one object; write a single "$or" array')
    if key in OPERATORS and not (isinstance(old, dict) and isinstance(new, dict)):
        raise FilterPatternError(f'operator "{key}" appears twice in one match expression')
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for k, v in new.items():
            merged[k] = _merge_duplicate(k, merged[k], v) if k in merged else v
        return merged
    return new  # a repeated leaf: the last one wins, as in event-ruler


# ------------------------------------------------------------------------ validation


def validate_pattern(pattern: dict[str, Any]) -> None:
    """Check a decoded pattern against the filter rule syntax.

    Raises :class:`FilterPatternError` with a dotted path to the offending part.
    """
    if not isinstance(pattern, dict):
        raise FilterPatternError(f"pattern must be a JSON object, got {_json_type(pattern)}")
    _validate_object(pattern, "", in_or=False)


def _where(path: str) -> str:
    return f"at {path}" if path else "at the top level"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_object(obj: dict[str, Any], path: str, *, in_or: bool) -> None:
    if not obj:
        raise FilterPatternError(f"empty objects are not allowed {_where(path)}")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise FilterPatternError(f"object keys must be strings {_where(path)}")
        if key == OR_KEY:
            _validate_or(value, path, in_or=in_or)
            continue
        here = _join(path, key)
        if in_or and key in OPERATORS:
            raise FilterPatternError(
                f'"{key}" is an operator name and cannot be a field inside "$or" ({here})'
            )
        if isinstance(value, dict):
            _validate_object(value, here, in_or=in_or)
        elif isinstance(value, list):
            _validate_rules(value, here)
        else:
            raise FilterPatternError(
                f"{here} must be an object or an array of match values, got "
                f'{_json_type(value)} (write "{key}": [{_short(value)}])'
            )


def _validate_or(value: Any, path: str, *, in_or: bool) -> None:
    here = _join(path, OR_KEY)
    if not isinstance(value, list):
        raise FilterPatternError(f"{here} must be an array of objects, got {_json_type(value)}")
    if len(value) < 2:
        raise FilterPatternError(f"{here} needs at least 2 objects, got {len(value)}")
    for i, branch in enumerate(value):
        if not isinstance(branch, dict):
            raise FilterPatternError(f"{here}[{i}] must be an object, got {_json_type(branch)}")
        _validate_object(branch, path, in_or=True)


def _validate_rules(rules: list[Any], path: str) -> None:
    if not rules:
        raise FilterPatternError(
            f"empty arrays are not allowed at {path} (null is matched by [null])"
        )
    for i, rule in enumerate(rules):
        here = f"{path}[{i}]"
        if rule is None or isinstance(rule, (str, bool)):
            continue
        if _is_number(rule):
            _check_finite(rule, here)
        elif isinstance(rule, dict):
            _validate_operator(rule, here)
        else:
            raise FilterPatternError(
                f"match value at {here} must be a string, number, true, false, null or an "
                f"operator object, got {_json_type(rule)}"
            )


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterPatternError(f"number at {where} must be finite, got {value!r}")


def _validate_operator(rule: dict[str, Any], where: str) -> None:
    if len(rule) != 1:
        if not rule:
            raise FilterPatternError(f"empty match expression at {where}")
        names = ", ".join(f'"{k}"' for k in rule)
        raise FilterPatternError(
            f"a match expression has exactly one operator; {where} has {names}"
        )
    ((op, operand),) = rule.items()
    if op not in OPERATORS:
        known = ", ".join(sorted(OPERATORS))
        raise FilterPatternError(f'unknown operator "{op}" at {where} (known: {known})')
    if op in ("prefix", "suffix"):
        _validate_affix(op, operand, where, allow_empty=True)
    elif op == "equals-ignore-case":
        if not isinstance(operand, str):
            raise FilterPatternError(
                f'"equals-ignore-case" at {where} needs a string, got {_json_type(operand)}'
            )
    elif op == "exists":
        if not isinstance(operand, bool):
            raise FilterPatternError(
                f'"exists" at {where} needs true or false, got {_json_type(operand)}'
            )
    elif op == "numeric":
        _validate_numeric(operand, where)
    elif op == "anything-but":
        _validate_anything_but(operand, where)
    elif op == "cidr":
        _validate_cidr(operand, where)
    else:  # wildcard
        _validate_wildcard(operand, where)


def _validate_affix(op: str, operand: Any, where: str, *, allow_empty: bool) -> None:
    if isinstance(operand, dict):
        if set(operand) != {"equals-ignore-case"}:
            raise FilterPatternError(
                f'"{op}" at {where} takes a string or {{"equals-ignore-case": string}}'
            )
        operand = operand["equals-ignore-case"]
    if not isinstance(operand, str):
        raise FilterPatternError(f'"{op}" at {where} needs a string, got {_json_type(operand)}')
    if not operand and not allow_empty:
        raise FilterPatternError(f'"{op}" at {where} must not be empty')


def _validate_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or not operand:
        raise FilterPatternError(
            f'"numeric" at {where} needs an array such as ["=", 100] or [">", 10, "<=", 20]'
        )
    terms = list(operand)
    for i in range(0, len(terms), 2):
        op = terms[i]
        if not isinstance(op, str) or op not in ("=", *_LOWER_OPS, *_UPPER_OPS):
            raise FilterPatternError(
                f'"numeric" at {where}: {_short(op)} is not one of "=", ">", ">=", "<", "<="'
            )
        if i + 1 >= len(terms) or not _is_number(terms[i + 1]):
            got = _short(terms[i + 1]) if i + 1 < len(terms) else "nothing"
            raise FilterPatternError(
                f'"numeric" at {where}: "{op}" must be followed by a number, got {got}'
            )
        _check_finite(terms[i + 1], where)
    first = terms[0]
    if len(terms) == 2:
        return
    if len(terms) != 4 or first not in _LOWER_OPS or terms[2] not in _UPPER_OPS:
        raise FilterPatternError(
            f'"numeric" at {where}: a range is a lower bound (">" or ">=") followed by an '
            'upper bound ("<" or "<="), e.g. [">", 10, "<=", 20]'
        )
    if not terms[1] < terms[3]:
        raise FilterPatternError(
            f'"numeric" at {where}: lower bound {terms[1]!r} must be less than upper bound '
            f"{terms[3]!r}"
        )


def _validate_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, str):
        return
    if _is_number(operand):
        _check_finite(operand, where)
        return
    if isinstance(operand, list):
        if not operand:
            raise FilterPatternError(f'"anything-but" at {where} needs a non-empty array')
        if all(isinstance(v, str) for v in operand):
            return
        if all(_is_number(v) for v in operand):
            for v in operand:
                _check_finite(v, where)
            return
        raise FilterPatternError(
            f'"anything-but" at {where}: the array must hold only strings or only numbers'
        )
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise FilterPatternError(
                f'"anything-but" at {where} takes one of prefix, suffix, equals-ignore-case, '
                "wildcard"
            )
        ((op, inner),) = operand.items()
        if op in ("prefix", "suffix"):
            # A string or an array of strings, none empty: event-ruler's README ("Anything-but
            # prefix list (strings)": {"anything-but": {"prefix": ["init", "error"]}}, and the
            # same for suffix) and JsonRuleCompiler.processAnythingButValuesSetMatchExpression
            # ("Null prefix/suffix not allowed", "prefix/suffix match pattern must be a string").
            items = inner if isinstance(inner, list) else [inner]
            if isinstance(inner, list) and not inner:
                raise FilterPatternError(
                    f'"anything-but"/"{op}" at {where} needs a non-empty array of strings'
                )
            if not all(isinstance(v, str) and v for v in items):
                raise FilterPatternError(
                    f'"anything-but"/"{op}" at {where} needs a non-empty string or an array '
                    "of non-empty strings"
                )
            return
        if op in ("equals-ignore-case", "wildcard"):
            items = inner if isinstance(inner, list) else [inner]
            if not items or not all(isinstance(v, str) for v in items):
                raise FilterPatternError(
                    f'"anything-but"/"{op}" at {where} needs a string or an array of strings'
                )
            if op == "wildcard":
                for v in items:
                    _validate_wildcard(v, where)
            return
        raise FilterPatternError(f'unsupported "anything-but" operator "{op}" at {where}')
    raise FilterPatternError(
        f'"anything-but" at {where} needs a string, a number, an array of them, or an '
        f"operator object; got {_json_type(operand)}"
    )


def _validate_cidr(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise FilterPatternError(f'"cidr" at {where} needs a string, got {_json_type(operand)}')
    try:
        ipaddress.ip_network(operand, strict=False)
    except ValueError:
        raise FilterPatternError(f'"cidr" at {where}: {operand!r} is not a CIDR block') from None


def _validate_wildcard(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise FilterPatternError(f'"wildcard" at {where} needs a string, got {_json_type(operand)}')
    _wildcard_regex(operand, where)


@functools.lru_cache(maxsize=512)
def _wildcard_regex(text: str, where: str = "") -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    previous_star = False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt not in ("*", "\\"):
                raise FilterPatternError(
                    f'"wildcard" at {where}: a backslash may only escape "*" or "\\"'
                )
            parts.append(re.escape(nxt))
            previous_star = False
            i += 2
            continue
        if ch == "*":
            if previous_star:
                raise FilterPatternError(
                    f'"wildcard" at {where}: consecutive "*" characters are not allowed'
                )
            parts.append(".*")
            previous_star = True
        else:
            parts.append(re.escape(ch))
            previous_star = False
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def validate_criteria(
    patterns: Sequence[str], *, max_filters: int = DEFAULT_MAX_FILTERS
) -> list[dict[str, Any]]:
    """Parse every pattern of a ``FilterCriteria``; enforce the filter-count quota."""
    if len(patterns) > max_filters:
        raise FilterPatternError(
            f"{len(patterns)} filters; the event source mapping allows {max_filters} "
            f"(default quota {DEFAULT_MAX_FILTERS}, at most {MAX_FILTERS_WITH_QUOTA})"
        )
    parsed: list[dict[str, Any]] = []
    for i, text in enumerate(patterns, start=1):
        try:
            parsed.append(parse_pattern(text))
        except FilterPatternError as exc:
            raise FilterPatternError(f"filter {i} of {len(patterns)}: {exc}") from None
    return parsed


# -------------------------------------------------------------------------- matching


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """True if the record passes this one pattern.

    ``pattern`` should come from :func:`parse_pattern` (or have passed
    :func:`validate_pattern`); malformed parts raise :class:`FilterPatternError`.
    """
    return _object_matches(pattern, event)


def _children(node: Any) -> list[Any]:
    """The objects a pattern object is matched against, arrays crushed out."""
    if isinstance(node, list):
        found = [el for el in _flatten(node) if isinstance(el, dict)]
        return found or [_MISSING]
    return [node]


def _flatten(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _lookup(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    return _MISSING


def _leaf_values(node: Any) -> list[Any]:
    if node is _MISSING or isinstance(node, dict):
        return []
    if isinstance(node, list):
        return [v for v in _flatten(node) if not isinstance(v, dict)]
    return [node]


def _object_matches(pobj: dict[str, Any], node: Any) -> bool:
    return any(_object_matches_one(pobj, el) for el in _children(node))


def _object_matches_one(pobj: dict[str, Any], node: Any) -> bool:
    for key, sub in pobj.items():
        if key == OR_KEY:
            if not any(_object_matches_one(branch, node) for branch in sub):
                return False
            continue
        child = _lookup(node, key)
        if isinstance(sub, dict):
            if not _object_matches(sub, child):
                return False
        elif not _rules_match(sub, _leaf_values(child)):
            return False
    return True


def _rules_match(rules: list[Any], values: list[Any]) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule and len(rule) == 1:
            if bool(values) == rule["exists"]:
                return True
            continue
        if any(_value_matches(rule, v) for v in values):
            return True
    return False


def _value_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        return _operator_matches(rule, value)
    return _exact(rule, value)


def _exact(rule: Any, value: Any) -> bool:
    if rule is None:
        return value is None
    if isinstance(rule, bool):
        return isinstance(value, bool) and value is rule
    if isinstance(rule, str):
        return isinstance(value, str) and value == rule
    if _is_number(rule):
        # Lambda compares numbers by representation: 300 and 300.0 differ.
        return _is_number(value) and type(value) is type(rule) and repr(value) == repr(rule)
    raise FilterPatternError(f"invalid match value {_short(rule)}")


def _affix_matches(op: str, operand: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        # Case-insensitive: compare lower-cased and upper-cased forms, as equals-ignore-case
        # does ("ß" upper-cases to "SS", so lower-casing alone would miss it).
        needle = str(operand["equals-ignore-case"])
        pairs = [(value.lower(), needle.lower()), (value.upper(), needle.upper())]
    else:
        pairs = [(value, str(operand))]
    if op == "prefix":
        return any(hay.startswith(n) for hay, n in pairs)
    return any(hay.endswith(n) for hay, n in pairs)


def _ignore_case_equal(a: str, b: str) -> bool:
    return a.lower() == b.lower() or a.upper() == b.upper()


def _operator_matches(rule: dict[str, Any], value: Any) -> bool:
    if len(rule) != 1:
        raise FilterPatternError(f"invalid match expression {_short(rule)}")
    ((op, operand),) = rule.items()
    if op in ("prefix", "suffix"):
        return _affix_matches(op, operand, value)
    if op == "equals-ignore-case":
        return isinstance(value, str) and _ignore_case_equal(value, str(operand))
    if op == "numeric":
        return _numeric_matches(operand, value)
    if op == "anything-but":
        return not _anything_but_excludes(operand, value)
    if op == "exists":
        return bool(operand)  # reached only when mixed with other rules: value present
    if op == "cidr":
        return _cidr_matches(str(operand), value)
    if op == "wildcard":
        return isinstance(value, str) and _wildcard_regex(str(operand)).fullmatch(value) is not None
    raise FilterPatternError(f'unknown operator "{op}"')


def _numeric_matches(terms: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    x = float(value)
    for i in range(0, len(terms), 2):
        op, bound = terms[i], float(terms[i + 1])
        ok = {
            "=": x == bound,
            ">": x > bound,
            ">=": x >= bound,
            "<": x < bound,
            "<=": x <= bound,
        }.get(op)
        if ok is None:
            raise FilterPatternError(f'invalid numeric operator "{op}"')
        if not ok:
            return False
    return True


def _anything_but_excludes(operand: Any, value: Any) -> bool:
    """True if ``value`` is one of the things anything-but excludes."""
    if isinstance(operand, dict):
        ((op, inner),) = operand.items()
        items = inner if isinstance(inner, list) else [inner]
        if op in ("prefix", "suffix"):
            # A list excludes a value that has any of the prefixes (suffixes).
            return any(_affix_matches(op, v, value) for v in items)
        if not isinstance(value, str):
            return False
        if op == "equals-ignore-case":
            return any(_ignore_case_equal(value, str(v)) for v in items)
        return any(_wildcard_regex(str(v)).fullmatch(value) is not None for v in items)
    items = operand if isinstance(operand, list) else [operand]
    for item in items:
        if isinstance(item, str):
            if isinstance(value, str) and value == item:
                return True
        elif _is_number(value) and float(value) == float(item):
            return True
    return False


def _cidr_matches(block: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value)
        network = ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False
    return address.version == network.version and address in network


# ----------------------------------------------------------------------- explanation


def explain_mismatch(pattern: dict[str, Any], event: dict[str, Any]) -> str | None:
    """None if the record passes the pattern, else a one-line reason naming the field."""
    if matches(pattern, event):
        return None
    return _object_reason(pattern, event, "") or "the record does not match the pattern"


def _object_reason(pobj: dict[str, Any], node: Any, path: str) -> str | None:
    candidates = _children(node)
    if len(candidates) == 1:
        return _object_reason_one(pobj, candidates[0], path)
    if any(_object_matches_one(pobj, el) for el in candidates):
        return None
    first = _object_reason_one(pobj, candidates[0], f"{path}[0]")
    return f"none of the {len(candidates)} elements of {path} match; first: {first}"


def _object_reason_one(pobj: dict[str, Any], node: Any, path: str) -> str | None:
    for key, sub in pobj.items():
        if key == OR_KEY:
            if any(_object_matches_one(branch, node) for branch in sub):
                continue
            reasons = [
                f"({i}) {_object_reason_one(branch, node, path) or 'no match'}"
                for i, branch in enumerate(sub, start=1)
            ]
            where = f" at {path}" if path else ""
            return f'no "$or" alternative{where} matches: ' + "; ".join(reasons)
        child = _lookup(node, key)
        here = _join(path, key)
        if isinstance(sub, dict):
            if not _object_matches(sub, child):
                if child is _MISSING:
                    return f"{here} is missing, pattern has conditions below it"
                if not isinstance(child, (dict, list)):
                    return (
                        f"{here} is {_short(child)}, not an object; pattern has conditions below it"
                    )
                return _object_reason(sub, child, here)
        elif not _rules_match(sub, _leaf_values(child)):
            return _leaf_reason(sub, child, here)
    return None


def _leaf_reason(rules: list[Any], child: Any, path: str) -> str:
    allowed = _short(rules, limit=160)
    wants_existence = any(r == {"exists": True} for r in rules)
    if child is _MISSING:
        if wants_existence and len(rules) == 1:
            return f"{path} is missing, pattern requires it to exist"
        return f"{path} is missing, pattern allows {allowed}"
    if isinstance(child, dict):
        keys = ", ".join(f'"{k}"' for k in list(child)[:3])
        return (
            f"{path} is an object (keys: {keys}), not a leaf value; pattern allows "
            f"{allowed}, and rules only match leaf values"
        )
    values = _leaf_values(child)
    if not values:
        return f"{path} is {_short(child)} (no leaf values), pattern allows {allowed}"
    if rules == [{"exists": False}]:
        return f"{path} is {_short(child)}, pattern requires it to be absent"
    reason = f"{path} is {_short(child)}, pattern allows {allowed}"
    return reason + _hint(rules, values)


def _hint(rules: list[Any], values: list[Any]) -> str:
    strings = [v for v in values if isinstance(v, str)]
    if not strings:
        return ""
    if any(isinstance(r, dict) and "numeric" in r for r in rules):
        return (
            "; numeric rules only match JSON numbers, and DynamoDB stream records carry "
            "numbers as strings (AWS: DynamoDB event filtering doesn't support numeric "
            "operators)"
        )
    for rule in rules:
        if _is_number(rule) and json.dumps(rule) in strings:
            return (
                f"; the pattern has the number {json.dumps(rule)} but the record has the "
                f'string "{json.dumps(rule)}" (write it quoted)'
            )
    return ""


def _short(value: Any, *, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------- FilterCriteria


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str) -> dict[str, Any]:
    return parse_pattern(text)


def evaluate_criteria(
    patterns: list[str], event: dict[str, Any]
) -> tuple[bool, list[tuple[str, str]]]:
    """Apply ``FilterCriteria`` semantics to one record.

    No patterns: the record passes, ``(True, [])``.  Otherwise it passes if any
    pattern matches; when none does, returns ``(False, [(pattern_text, reason), ...])``
    for every pattern.  An invalid pattern raises :class:`FilterPatternError`.
    """
    if not patterns:
        return True, []
    parsed: list[dict[str, Any]] = []
    for i, text in enumerate(patterns, start=1):
        try:
            parsed.append(_parse_cached(text))
        except FilterPatternError as exc:
            raise FilterPatternError(f"filter {i} of {len(patterns)}: {exc}") from None
    if any(matches(p, event) for p in parsed):
        return True, []
    reasons: list[tuple[str, str]] = []
    for text, pattern in zip(patterns, parsed, strict=True):
        reason = explain_mismatch(pattern, event) or "the record does not match the pattern"
        reasons.append((text, reason))
    return False, reasons


def event_name_pattern(names: list[str]) -> str:
    """A pattern passing only the given stream event names, compact and stable.

    ``["INSERT", "MODIFY"]`` -> ``'{"eventName": ["INSERT", "MODIFY"]}'``.
    Duplicates are dropped, the given order is kept.
    """
    if isinstance(names, str):
        raise FilterPatternError("event names must be a list, not a string")
    unique: list[str] = []
    for name in names:
        if name not in STREAM_EVENT_NAMES:
            raise FilterPatternError(
                f"unknown stream event name {name!r}; expected one of "
                + ", ".join(STREAM_EVENT_NAMES)
            )
        if name not in unique:
            unique.append(name)
    if not unique:
        raise FilterPatternError("at least one event name is needed (empty arrays are invalid)")
    return json.dumps({"eventName": unique})


# ------------------------------------------------------------------------------ lint


def lint_pattern(pattern: dict[str, Any]) -> list[str]:
    """Warnings for a valid pattern that will not do what it seems to, on DynamoDB.

    Covers: numeric operators and number literals on DynamoDB values (always strings),
    rules placed on a typed attribute instead of its type key (``{"S": [...]}``), fields
    a DynamoDB stream record does not have, and operators Lambda does not document.
    """
    warnings: list[str] = []
    _lint_object(pattern, (), warnings)
    return warnings


def _lint_object(pobj: dict[str, Any], path: tuple[str, ...], out: list[str]) -> None:
    for key, sub in pobj.items():
        if key == OR_KEY:
            for branch in sub:
                _lint_object(branch, path, out)
            continue
        here = (*path, key)
        dotted = ".".join(here)
        if not path and key not in _RECORD_FIELDS:
            out.append(
                f'{dotted}: a DynamoDB stream record has no "{key}" field (it has '
                + ", ".join(_RECORD_FIELDS)
                + ")"
            )
        if isinstance(sub, dict):
            _lint_object(sub, here, out)
        else:
            _lint_rules(sub, here, out)


def _lint_rules(rules: list[Any], path: tuple[str, ...], out: list[str]) -> None:
    dotted = ".".join(path)
    in_item = len(path) >= 3 and path[0] == "dynamodb" and path[1] in _IMAGE_KEYS
    if in_item and len(path) == 3:
        out.append(
            f"{dotted}: attribute values in stream records are typed objects such as "
            f'{{"S": "..."}}; put the rule under the type key, e.g. '
            f'{{"{path[2]}": {{"S": {_short(rules, limit=60)}}}}}'
        )
    for rule in rules:
        if in_item and isinstance(rule, dict) and "numeric" in rule:
            out.append(
                f"{dotted}: DynamoDB event filtering doesn't support numeric operators "
                "(AWS); stream records carry numbers as strings, so this never matches"
            )
        if in_item and _is_number(rule):
            out.append(
                f"{dotted}: the number {json.dumps(rule)} never matches; DynamoDB stream "
                f'records carry numbers as strings, write "{json.dumps(rule)}"'
            )
        if isinstance(rule, dict):
            note = _undocumented(rule)
            if note:
                out.append(
                    f"{dotted}: {note} is not in Lambda's filter rule syntax "
                    "(EventBridge has it; Lambda may reject it)"
                )


def _undocumented(rule: dict[str, Any]) -> str | None:
    ((op, operand),) = rule.items()
    if op not in LAMBDA_DOCUMENTED_OPERATORS:
        return f'"{op}"'
    if op in ("prefix", "suffix") and isinstance(operand, dict):
        return f'"{op}" with "equals-ignore-case"'
    if op == "anything-but" and isinstance(operand, dict):
        (inner,) = operand
        return f'"anything-but" with "{inner}"'
    return None
