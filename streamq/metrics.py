"""CloudWatch reads for the pipeline: the trigger's function metrics and, when the
mapping has them turned on, the event source mapping's own metrics (GetMetricData).

AWS facts relied on (Lambda Developer Guide, "Types of metrics for Lambda functions",
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html, and
"Viewing metrics for Lambda functions", monitoring-metrics-view.html; CloudWatch API
reference, GetMetricData; CloudWatch concepts, "Metrics retention"):

* Namespace ``AWS/Lambda``. Function metrics carry the dimension ``FunctionName``:
  ``Invocations``, ``Errors`` and ``Throttles`` (invocation metrics: view them with
  ``Sum``; a 1-minute Sum is a count per minute), ``DestinationDeliveryFailures`` ("for
  asynchronous invocation and supported event source mappings": for an event source
  mapping, destinations exist for stream sources, DynamoDB and Kinesis), ``Duration``
  (ms) and ``IteratorAge`` ("for DynamoDB, Kinesis ... event sources, the age of the
  last record in the event in milliseconds": from the stream receiving the record to
  the mapping sending the event to the function; view it with ``Maximum``).
* Event source mapping metrics carry the dimension ``EventSourceMappingUUID`` and exist
  only when the mapping's ``MetricsConfig.Metrics`` holds ``EventCount``
  (EventSourceMappingMetricsConfig; "you must opt-in"). For DynamoDB streams:
  ``PolledEventCount``, ``FilteredOutEventCount``, ``InvokedEventCount``,
  ``FailedInvokeEventCount``, ``DroppedEventCount`` (records over MaximumRecordAgeInSeconds
  or MaximumRetryAttempts that were *not* sent to an on-failure destination) and
  ``OnFailureDestinationDeliveredEventCount``. A disabled mapping emits none of them.
* Lambda sends metric data in 1-minute intervals, and nothing for a minute without
  invocations: no datapoints means "no metrics", not zero.
* GetMetricData: at most 500 queries a call, results paged by ``NextToken``; a standard
  resolution metric takes a Period that is a multiple of 60. Data at a 60 s period is
  kept 15 days, at 300 s 63 days, at 3600 s 455 days.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .aws import Aws, aws_errors

NAMESPACE = "AWS/Lambda"
GET_METRIC_DATA_ACTION = "cloudwatch:GetMetricData"


@dataclass(frozen=True)
class MetricSpec:
    key: str  # our id (also the GetMetricData query id: ^[a-z][a-zA-Z0-9_]*$)
    name: str  # the CloudWatch metric name
    stat: str  # Sum | Maximum
    level: str  # function | mapping
    unit: str = "count"  # count | ms


FUNCTION_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("invocations", "Invocations", "Sum", "function"),
    MetricSpec("errors", "Errors", "Sum", "function"),
    MetricSpec("throttles", "Throttles", "Sum", "function"),
    MetricSpec("iterator_age", "IteratorAge", "Maximum", "function", "ms"),
    MetricSpec("duration", "Duration", "Maximum", "function", "ms"),
    MetricSpec("destination_delivery_failures", "DestinationDeliveryFailures", "Sum",
               "function"),
)
MAPPING_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("polled", "PolledEventCount", "Sum", "mapping"),
    MetricSpec("filtered_out", "FilteredOutEventCount", "Sum", "mapping"),
    MetricSpec("invoked", "InvokedEventCount", "Sum", "mapping"),
    MetricSpec("failed_invoke", "FailedInvokeEventCount", "Sum", "mapping"),
    MetricSpec("dropped", "DroppedEventCount", "Sum", "mapping"),
    MetricSpec("destination_delivered", "OnFailureDestinationDeliveredEventCount", "Sum",
               "mapping"),
)
ALL_METRICS: dict[str, MetricSpec] = {m.key: m for m in (*FUNCTION_METRICS, *MAPPING_METRICS)}


def mapping_metrics_enabled(mapping: dict[str, Any]) -> bool:
    """Does the mapping emit its own metrics (``MetricsConfig.Metrics`` has EventCount)?"""
    return "EventCount" in ((mapping.get("MetricsConfig") or {}).get("Metrics") or [])


@dataclass
class Series:
    """One metric's datapoints over the window, oldest first: (epoch seconds, value)."""

    spec: MetricSpec
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return bool(self.points)

    @property
    def total(self) -> float | None:
        return sum(v for _, v in self.points) if self.points else None

    @property
    def peak(self) -> float | None:
        return max(v for _, v in self.points) if self.points else None

    @property
    def latest(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def latest_at(self) -> float | None:
        return self.points[-1][0] if self.points else None

    def value(self) -> float | None:
        """The window's value by the metric's statistic: the sum or the maximum."""
        return self.peak if self.spec.stat == "Maximum" else self.total

    def rising(self) -> bool:
        """The latest datapoint is above the first one (needs two)."""
        return len(self.points) >= 2 and self.points[-1][1] > self.points[0][1]

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.spec.name, "stat": self.spec.stat,
                "value": _round(self.value()), "latest": _round(self.latest),
                "datapoints": len(self.points)}


def _round(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 3)


@dataclass
class MetricsReport:
    function: str
    mapping_uuid: str | None
    start: float
    end: float
    period: int
    series: dict[str, Series] = field(default_factory=dict)

    def get(self, key: str) -> Series:
        return self.series.get(key) or Series(ALL_METRICS[key])

    @property
    def window(self) -> float:
        return self.end - self.start


def period_for(seconds: float) -> int:
    """A period CloudWatch still holds data at, for a window reaching ``seconds`` back."""
    if seconds <= 15 * 86400:
        return 60
    if seconds <= 63 * 86400:
        return 300
    return 3600


def _utc(ts: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)


def _epoch(value: Any) -> float:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return float(value.timestamp())
    return float(value)


def read(aws: Aws, *, function: str, mapping_uuid: str | None = None, since: float = 3600,
         now: float | None = None, specs: Iterable[MetricSpec] | None = None,
         period: int | None = None) -> MetricsReport:
    """The function's metrics (and the mapping's, given its UUID) over the last ``since``
    seconds, in one GetMetricData call per 500 queries (every page read)."""
    end = time.time() if now is None else now
    start = end - since
    period = period or period_for(since)
    chosen = list(specs) if specs is not None else [
        *FUNCTION_METRICS, *(MAPPING_METRICS if mapping_uuid else ())]
    report = MetricsReport(function, mapping_uuid, start, end, period)
    queries = []
    for spec in chosen:
        if spec.level == "mapping" and not mapping_uuid:
            continue
        dims = ([{"Name": "FunctionName", "Value": function}] if spec.level == "function"
                else [{"Name": "EventSourceMappingUUID", "Value": str(mapping_uuid)}])
        queries.append({"Id": spec.key, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": spec.name, "Dimensions": dims},
            "Period": period, "Stat": spec.stat}})
        report.series[spec.key] = Series(spec)
    client = aws.client("cloudwatch")
    for chunk in _chunks(queries, 500):
        kwargs: dict[str, Any] = {"MetricDataQueries": chunk, "StartTime": _utc(start),
                                  "EndTime": _utc(end + 1), "ScanBy": "TimestampAscending"}
        while True:
            with aws_errors():
                page = client.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                series = report.series.get(str(result.get("Id")))
                if series is None:
                    continue
                series.points.extend(
                    (_epoch(t), float(v)) for t, v in zip(result.get("Timestamps", []),
                                                          result.get("Values", []),
                                                          strict=False))
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    for series in report.series.values():
        series.points.sort()
    return report


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def per_minute(series: Series, *, minutes: int, now: float, period: int = 60) -> list[float]:
    """The last ``minutes`` buckets of a Sum series as values per bucket, oldest first;
    a bucket without a datapoint counts 0 (for sparklines and rates)."""
    out = [0.0] * minutes
    for ts, value in series.points:
        age = now - ts
        index = minutes - 1 - math.floor(age / period)
        if 0 <= index < minutes:
            out[index] += value
    return out
