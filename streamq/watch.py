"""``streamq watch``: the pipeline's state at one moment, refreshed.

Each :class:`Snapshot` holds the outbox counts (the same full count as ``streamq
stats``), the oldest record's age, the trigger's state, the function's CloudWatch
metrics over the last minutes (invocations and errors per minute, iterator age) and
the on-failure destination's backlog. Each part is read on its own: one that fails
(access denied, no answer) is reported in ``errors`` and the others still show.
:class:`Watcher` keeps the history of counts for the sparklines.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .aws import Aws
from .config import Settings
from .errors import NotFound, StreamqError
from .health import (
    Destination,
    OutboxCount,
    _Step,
    _why,
    destination_of,
    outbox_counts,
    read_destination,
)
from .metrics import FUNCTION_METRICS, per_minute, read
from .outbox import STATUSES, TableInfo, iso

HISTORY = 120  # refreshes kept for the sparklines
METRIC_MINUTES = 10  # CloudWatch window read each refresh
RATE_MINUTES = 5  # invocations and errors per minute: averaged over the last 5 minutes


@dataclass
class Snapshot:
    at: float
    table: str
    counted: OutboxCount | None = None
    trigger: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    destination: Destination | None = None
    errors: dict[str, str] = field(default_factory=dict)
    took: float = 0.0

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        counts = None
        stats_doc: dict[str, Any] = {}
        if self.counted is not None:
            stats_doc = self.counted.stats.to_json(info)
            counts = stats_doc["counts"]
        from .schemas import WATCH_SNAPSHOT

        return {
            "schema_version": WATCH_SNAPSHOT,
            "time": iso(self.at), "table": self.table,
            "counts": counts, "total": stats_doc.get("total"),
            "oldest_age_seconds": stats_doc.get("oldest_age_seconds"),
            "oldest_key": stats_doc.get("oldest_key"),
            "trigger": self.trigger, "metrics": self.metrics,
            "destination": None if self.destination is None else self.destination.to_json(),
            "errors": self.errors, "seconds": round(self.took, 3),
        }


class Watcher:
    """Reads snapshots of one outbox and keeps the history of its counts."""

    def __init__(self, aws: Aws, settings: Settings, info: TableInfo, *,
                 step_timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.aws, self.settings, self.info = aws, settings, info
        self.step_timeout = step_timeout
        self.clock = clock
        self.uuid: str | None = None
        self.history: deque[dict[str, int]] = deque(maxlen=HISTORY)

    def _mapping(self) -> dict[str, Any]:
        from .trigger import find_trigger, get_mapping

        if self.uuid is not None:
            try:
                return get_mapping(self.aws, self.uuid)
            except NotFound:
                self.uuid = None
        found = find_trigger(self.aws, self.info, function=self.settings.function)
        self.uuid = str(found["UUID"])
        return get_mapping(self.aws, self.uuid)

    def snapshot(self) -> Snapshot:
        from .trigger import function_name_of

        started = time.monotonic()
        snap = Snapshot(self.clock(), self.info.name)
        counting = _Step(lambda: outbox_counts(self.aws, self.info, self.settings),
                         max(self.step_timeout, 600.0))
        mapping: dict[str, Any] | None = None
        try:
            mapping = _Step(self._mapping, self.step_timeout).result()
        except StreamqError as exc:
            snap.errors["trigger"] = _why(exc, "lambda:GetEventSourceMapping")
        if mapping is not None:
            function = function_name_of(str(mapping.get("FunctionArn", "")))
            snap.trigger = {"uuid": mapping.get("UUID"), "function": function,
                            "state": mapping.get("State"),
                            "last_processing_result": mapping.get("LastProcessingResult")}
            now = snap.at
            metrics_step = _Step(lambda: read(self.aws, function=function,
                                              since=METRIC_MINUTES * 60, now=now,
                                              specs=FUNCTION_METRICS), self.step_timeout)
            dest = destination_of(mapping)
            uuid = str(mapping.get("UUID"))
            dest_step = (_Step(lambda: read_destination(self.aws, str(dest), uuid),
                               self.step_timeout) if dest else None)
            try:
                report = metrics_step.result()
            except StreamqError as exc:
                snap.errors["metrics"] = _why(exc, "cloudwatch:GetMetricData")
            else:
                snap.metrics = _metrics_doc(report, now)
            if dest_step is not None:
                try:
                    snap.destination = dest_step.result()
                except StreamqError as exc:
                    snap.errors["destination"] = _why(exc, "the destination's read action")
        try:
            snap.counted = counting.result()
        except StreamqError as exc:
            snap.errors["outbox"] = _why(exc, "dynamodb:Scan")
        if snap.counted is not None:
            self.history.append({s: snap.counted.stats.counts.get(s, 0) for s in STATUSES})
        snap.took = time.monotonic() - started
        return snap


def _metrics_doc(report: Any, now: float) -> dict[str, Any]:
    inv, err, thr = (report.get(k) for k in ("invocations", "errors", "throttles"))
    age = report.get("iterator_age")
    has = inv.has_data or err.has_data or age.has_data
    inv_min = per_minute(inv, minutes=METRIC_MINUTES, now=now)
    err_min = per_minute(err, minutes=METRIC_MINUTES, now=now)
    thr_min = per_minute(thr, minutes=METRIC_MINUTES, now=now)
    recent = slice(-RATE_MINUTES, None)
    return {
        "window_minutes": METRIC_MINUTES, "no_metrics": not has,
        "iterator_age_ms": _ms(age.latest), "iterator_age_max_ms": _ms(age.peak),
        "iterator_age_at": None if age.latest_at is None else iso(age.latest_at),
        "invocations_per_min": round(sum(inv_min[recent]) / RATE_MINUTES, 2),
        "errors_per_min": round(sum(err_min[recent]) / RATE_MINUTES, 2),
        "throttles_per_min": round(sum(thr_min[recent]) / RATE_MINUTES, 2),
        "invocations_by_minute": inv_min, "errors_by_minute": err_min,
    }


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)
