"""The sandbox trigger's CloudWatch metrics: what Lambda publishes for a DynamoDB stream
event source mapping, put into moto's CloudWatch (PutMetricData) so ``doctor`` and
``watch`` read real numbers locally, through the same GetMetricData calls as on AWS.

Published like Lambda does (Lambda DG, "Types of metrics for Lambda functions"; names and
dimensions in :mod:`streamq.metrics`):

* per invocation, namespace ``AWS/Lambda``, dimension ``FunctionName``: ``Invocations`` 1,
  ``Errors`` 1 when the handler raised and 0 otherwise ("binary indicators"),
  ``Duration`` (ms), ``IteratorAge`` (ms: now minus the creation time of the *last*
  record of the batch, when the batch is sent to the function);
* ``DestinationDeliveryFailures`` 1 when a record could not be sent to the on-failure
  destination;
* only when the mapping's ``MetricsConfig.Metrics`` holds ``EventCount``, dimension
  ``EventSourceMappingUUID``: ``PolledEventCount``, ``FilteredOutEventCount``,
  ``InvokedEventCount``, ``FailedInvokeEventCount``, ``DroppedEventCount`` (given up on
  and not delivered to a destination), ``OnFailureDestinationDeliveredEventCount``.

Differences from AWS: the sandbox never throttles (it does not emulate concurrency), so
``Throttles`` is never published; datapoints are buffered and put about once a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..aws import Aws, aws_errors
from ..errors import StreamqError
from ..metrics import NAMESPACE, mapping_metrics_enabled

log = logging.getLogger("streamq.sandbox.metrics")

_MAPPING_NAMES = {
    "polled": "PolledEventCount", "filtered_out": "FilteredOutEventCount",
    "invoked": "InvokedEventCount", "failed_invoke": "FailedInvokeEventCount",
    "dropped": "DroppedEventCount",
    "destination_delivered": "OnFailureDestinationDeliveredEventCount",
}
MAX_DATUMS = 1000  # PutMetricData: at most 1000 datums a call


class MetricsPublisher:
    """Buffers datapoints and puts them to CloudWatch at most every ``interval`` seconds
    (and on :meth:`flush`). A failed put is logged and dropped: metrics never stop the
    trigger. ``clock`` stamps the datapoints."""

    def __init__(self, aws: Aws, function: str, *, clock: Callable[[], float] = time.time,
                 interval: float = 1.0) -> None:
        self.aws, self.function, self.clock, self.interval = aws, function, clock, interval
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushed_at = time.monotonic()
        self.published = 0
        self.failures = 0

    def _datum(self, name: str, value: float, unit: str, dims: dict[str, str]) -> None:
        datum = {"MetricName": name, "Value": float(value), "Unit": unit,
                 "Timestamp": datetime.fromtimestamp(self.clock(), tz=timezone.utc),
                 "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]}
        with self._lock:
            self._buffer.append(datum)

    def _function(self, name: str, value: float, unit: str = "Count") -> None:
        self._datum(name, value, unit, {"FunctionName": self.function})

    # ----------------------------------------------------------------- events

    def invocation(self, *, error: bool, duration_ms: float, iterator_age_ms: float) -> None:
        self._function("Invocations", 1)
        self._function("Errors", 1 if error else 0)
        self._function("Duration", max(0.0, duration_ms), "Milliseconds")
        self._function("IteratorAge", max(0.0, iterator_age_ms), "Milliseconds")
        self.maybe_flush()

    def destination_failure(self) -> None:
        self._function("DestinationDeliveryFailures", 1)
        self.maybe_flush()

    def mapping_count(self, mapping: dict[str, Any], key: str, value: int) -> None:
        """One of the mapping's EventCount metrics, if the mapping has them turned on."""
        if not mapping_metrics_enabled(mapping) or not mapping.get("UUID"):
            return
        self._datum(_MAPPING_NAMES[key], value, "Count",
                    {"EventSourceMappingUUID": str(mapping["UUID"])})
        self.maybe_flush()

    # ------------------------------------------------------------------ flush

    def maybe_flush(self) -> None:
        if time.monotonic() - self._flushed_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._flushed_at = time.monotonic()
        if not batch:
            return
        client = self.aws.client("cloudwatch")
        for start in range(0, len(batch), MAX_DATUMS):
            chunk = batch[start:start + MAX_DATUMS]
            try:
                with aws_errors():
                    client.put_metric_data(Namespace=NAMESPACE, MetricData=chunk)
                self.published += len(chunk)
            except StreamqError as exc:
                self.failures += 1
                log.warning("metrics: PutMetricData failed, %d datapoint(s) dropped: %s",
                            len(chunk), exc)
