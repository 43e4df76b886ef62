"""Drift: the live trigger against a configuration saved with ``config-trigger --export``.

``config-trigger --check FILE`` (and the Python API) call :func:`check_drift` with the
mapping read by GetEventSourceMapping and the file read by
:func:`streamq.trigger.read_saved_config`. Nothing here calls AWS.

Rules (docs/config-trigger.md, "Drift check"):

* Only the settings the file has are checked. A field the file leaves out is listed as
  not checked, never compared with a default: a hand-written policy file may pin only
  what matters (``{"MaximumRetryAttempts": 3}``), and an export of a trigger whose
  encrypted filter AWS did not return leaves ``FilterCriteria`` out on purpose.
* A filter that cannot be read now (encrypted with a customer KMS key, not returned:
  :func:`streamq.trigger.filter_hidden`) is ``unknown`` when the file has one, never
  "no filter" and never equal.
* Filters are compared as what they match: the order of the filters (they are ORed)
  and the spacing and key order inside a pattern do not count; arrays inside a pattern
  keep their order (``numeric`` ranges are ordered).
* Identifiers: ``FunctionArn`` must be the same ARN, ``EventSourceArn`` the same table
  (region, account and name); another stream label (a stream re-created on the same
  table) or another ``UUID`` (a re-created mapping) is a note, not drift.

The result is ``in_sync`` (every checked field equal), ``drift`` (at least one differs)
or ``unknown`` (none differs, at least one could not be read). The CLI exits 0 for
in_sync and 3 for the other two (README, exit codes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .schemas import TRIGGER_CHECK as SCHEMA_VERSION  # the --check -o json document
from .trigger import SETTABLE, TRANSITIONAL, current_config, display_value, filter_hidden

IN_SYNC, DRIFT, UNKNOWN = "in_sync", "drift", "unknown"
EQUAL, DIFFERS = "equal", "differs"

_STREAM = re.compile(r"^(arn:[^:]+:dynamodb:[^:]*:[^:]*:table/[^/]+)(?:/stream/(.*))?$")


@dataclass(frozen=True)
class FieldCheck:
    """One checked field: ``equal``, ``differs`` or ``unknown`` (the live value cannot be
    read). ``saved``/``live`` are the normalized values (the ``--export`` shapes);
    ``live`` is None when unknown."""

    field: str
    status: str
    saved: Any
    live: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "status": self.status, "saved": self.saved,
                "live": self.live, "saved_display": show(self.field, self.saved),
                "live_display": show(self.field, self.live, unknown=self.status == UNKNOWN)}


@dataclass(frozen=True)
class DriftReport:
    source: str
    uuid: str | None
    function_arn: str | None
    event_source_arn: str | None
    state: str | None
    checks: list[FieldCheck]
    unchecked: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[FieldCheck]:
        return [c for c in self.checks if c.status != EQUAL]

    @property
    def status(self) -> str:
        if any(c.status == DIFFERS for c in self.checks):
            return DRIFT
        if any(c.status == UNKNOWN for c in self.checks):
            return UNKNOWN
        return IN_SYNC

    def summary(self) -> str:
        """One line for people."""
        checked = len(self.checks)
        if self.status == IN_SYNC:
            return f"in sync: the {checked} checked field(s) match {self.source}"
        differ = sum(c.status == DIFFERS for c in self.checks)
        unknown = [c.field for c in self.checks if c.status == UNKNOWN]
        parts = []
        if differ:
            parts.append(f"{differ} of {checked} checked field(s) differ from {self.source}")
        if unknown:
            parts.append(f"{', '.join(unknown)} cannot be read, so cannot be compared "
                         f"with {self.source}")
        return ("drift: " if differ else "unknown: ") + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status,
            "file": self.source,
            "UUID": self.uuid,
            "FunctionArn": self.function_arn,
            "EventSourceArn": self.event_source_arn,
            "State": self.state,
            "differences": [c.to_json() for c in self.differences],
            "checked": [c.field for c in self.checks],
            "unchecked": self.unchecked,
            "notes": self.notes,
        }


def show(field: str, value: Any, *, unknown: bool = False) -> str:
    """A checked value for people (identifiers as they are)."""
    if field in ("FunctionArn", "EventSourceArn"):
        return str(value)
    if field == "FilterCriteria" and unknown:
        return "unknown: encrypted, not returned"
    return display_value(field, value)


def _pattern_key(pattern: str) -> str:
    """A pattern as what it matches: parsed and re-dumped with sorted keys and no spacing
    (arrays keep their order). Text that is not JSON compares as itself."""
    try:
        return json.dumps(json.loads(pattern), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return pattern


def _filters_key(value: Mapping[str, Any]) -> list[str]:
    return sorted(_pattern_key(f["Pattern"]) for f in value.get("Filters", []))


def same(field: str, saved: Any, live: Any) -> bool:
    """Are two normalized values of ``field`` the same setting?"""
    if field == "FilterCriteria":
        return _filters_key(saved) == _filters_key(live)
    return bool(saved == live)


def _table_part(arn: str | None) -> tuple[str, str | None]:
    m = _STREAM.match(arn or "")
    return (m.group(1), m.group(2)) if m else (str(arn), None)


def check_drift(mapping: Mapping[str, Any], doc: Mapping[str, Any],
                values: Mapping[str, Any], *, source: str) -> DriftReport:
    """Compare the live ``mapping`` (GetEventSourceMapping) with a saved configuration:
    ``doc`` is the file as read, ``values`` its settable fields validated and normalized
    (:func:`streamq.trigger.read_saved_config`)."""
    checks: list[FieldCheck] = []
    notes: list[str] = []
    saved_fn, live_fn = doc.get("FunctionArn"), mapping.get("FunctionArn")
    if saved_fn:
        checks.append(FieldCheck("FunctionArn", EQUAL if saved_fn == live_fn else DIFFERS,
                                 saved_fn, live_fn))
    saved_src, live_src = doc.get("EventSourceArn"), mapping.get("EventSourceArn")
    if saved_src:
        (saved_table, saved_label), (live_table, live_label) = (
            _table_part(str(saved_src)), _table_part(str(live_src)))
        checks.append(FieldCheck("EventSourceArn",
                                 EQUAL if saved_table == live_table else DIFFERS,
                                 saved_src, live_src))
        if saved_table == live_table and saved_label != live_label:
            notes.append(f"the table's stream was re-created since {source} was saved "
                         f"(stream {saved_label}, now {live_label})")
    if doc.get("UUID") and doc["UUID"] != mapping.get("UUID"):
        notes.append(f"{source} names mapping {doc['UUID']}; the trigger now is "
                     f"{mapping.get('UUID')} (re-created)")
    live = current_config(mapping)
    hidden = filter_hidden(mapping)
    for name in SETTABLE:
        if name not in values:
            continue
        if name == "FilterCriteria" and live[name] is None:
            checks.append(FieldCheck(name, UNKNOWN, values[name], None))
            notes.append(f"the live filter is {hidden}")
            continue
        status = EQUAL if same(name, values[name], live[name]) else DIFFERS
        checks.append(FieldCheck(name, status, values[name], live[name]))
    unchecked = [n for n in SETTABLE if n not in values]
    state = mapping.get("State")
    if state in TRANSITIONAL:
        notes.append(f"the trigger is {state}: a change is under way, so what was read may "
                     "not be final; check again when it is Enabled or Disabled")
    return DriftReport(source=source, uuid=mapping.get("UUID"), function_arn=live_fn,
                       event_source_arn=live_src, state=state, checks=checks,
                       unchecked=unchecked, notes=notes)
