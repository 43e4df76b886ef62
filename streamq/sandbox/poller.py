"""The sandbox poller: emulates a Lambda event source mapping on a DynamoDB stream.

moto stores event source mappings but never runs them; this thread does what the
Lambda service does, from the mapping's *current* settings (re-read every poll, so
``streamq config-trigger`` changes take effect):

* polls each shard (parents before children) about 4 times a second, from an in-memory
  checkpoint (the last sequence number processed);
* applies ``FilterCriteria`` with :func:`streamq.filters.evaluate_criteria` (the matcher
  refire's pre-flight uses); records no filter passes are skipped and never retried, and
  do not count towards a batch;
* batches up to ``BatchSize`` records, waiting at most ``MaximumBatchingWindowInSeconds``
  from the first buffered record for a batch to fill;
* invokes the handler with the Lambda event shape; on a function error retries the batch
  until it succeeds, ``MaximumRetryAttempts`` retries were used, or a record is older than
  ``MaximumRecordAgeInSeconds``; with ``BisectBatchOnFunctionError`` a failed batch is
  first split in two, halves retried in order (splitting uses no retry);
* honours ``ReportBatchItemFailures`` (``batchItemFailures[].itemIdentifier`` =
  sequence number; the lowest one is the checkpoint, records from it on are retried; an
  empty or unknown identifier fails the whole batch);
* sends records it gives up on to the ``DestinationConfig.OnFailure`` destination as the
  documented invocation record (``DDBStreamBatchInfo``: a pointer, no data): an SQS
  queue gets it as the message body; an S3 bucket gets it as an object under
  ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`` with
  the whole event as ``payload`` (see :func:`send_to_destination`);
* does nothing while the mapping is disabled (``State`` other than ``Enabled``); the
  checkpoint stays, so records written meanwhile are processed once it is enabled;
  likewise while its filter is encrypted and unreadable (``FilterCriteriaError``);
* given a :class:`~streamq.sandbox.metrics.MetricsPublisher`, publishes the CloudWatch
  metrics Lambda publishes (Invocations, Errors, Duration, IteratorAge,
  DestinationDeliveryFailures, and the mapping's EventCount metrics when its
  MetricsConfig asks for them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..aws import Aws, aws_errors
from ..errors import StreamqError
from ..files import write_private
from ..filters import FilterPatternError, evaluate_criteria
from ..stream import ShardReader, describe_stream, epoch, lambda_record, table_stream_arn
from .metrics import MetricsPublisher

log = logging.getLogger("streamq.sandbox.poller")

Handler = Callable[[dict[str, Any], Any], Any]
POLL_INTERVAL = 0.25  # Lambda polls DynamoDB stream shards 4 times a second


@dataclass
class Counters:
    state: str = "starting"
    mapping_uuid: str | None = None
    polls: int = 0
    invocations: int = 0
    function_errors: int = 0
    #: records handed to the handler in an invocation that succeeded for them (once per
    #: record, retries not counted again); what the handler did with them (sent the mail
    #: or recorded an error) is the handler's business: `sandbox status` shows "delivered"
    #: from the demo handler's fake mail API.
    records_handled: int = 0
    records_filtered: int = 0
    records_discarded: int = 0
    records_expired: int = 0
    retries: int = 0
    bisects: int = 0
    dlq_messages: int = 0
    checkpoint: str | None = None
    last_invocation_at: float | None = None
    last_error: str | None = None
    updated_at: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    raw: dict[str, Any]
    read_at: float


class LambdaContext:
    """What a Python Lambda handler gets as ``context`` (the attributes handlers use)."""

    def __init__(self, function_arn: str, timeout_s: float = 900.0) -> None:
        self.function_name = function_arn.rsplit(":", 1)[-1]
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "sandbox"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Outcome:
    ok: bool
    failed_from: int | None = None  # ReportBatchItemFailures: index of the first failed record
    error: str | None = None
    request_id: str = ""


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int(ts * 1000) % 1000:03d}Z")


def iso_seconds(ts: float) -> str:
    """Whole seconds, as a DynamoDB on-failure record gives the arrival times: the Lambda
    Developer Guide's example (services-dynamodb-errors) has ``"timestamp":
    "2019-11-14T00:13:49.717Z"`` but ``"approximateArrivalOfFirstRecord":
    "2019-11-14T00:13:19Z"`` (a stream record's ApproximateCreationDateTime is whole
    seconds)."""
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Poller:
    """Emulates the trigger of ``table``'s stream that invokes ``function``."""

    def __init__(self, aws: Aws, *, table: str, function: str, handler: Handler,
                 region: str = "us-east-1", status_path: Path | None = None,
                 clock: Callable[[], float] = time.time, poll_interval: float = POLL_INTERVAL,
                 retry_delay: float = 0.2, max_retry_delay: float = 5.0,
                 stop: threading.Event | None = None,
                 metrics: MetricsPublisher | None = None) -> None:
        self.aws, self.table, self.function, self.handler = aws, table, function, handler
        self.region = region
        self.status_path = status_path
        self.clock = clock
        self.poll_interval = poll_interval
        self.retry_delay, self.max_retry_delay = retry_delay, max_retry_delay
        self.stop = stop or threading.Event()
        self.metrics = metrics
        self.polled_once = threading.Event()  # set once the first poll wrote its status
        self.counters = Counters()
        self._lock = threading.Lock()
        self._stream_arn: str | None = None
        self._uuid: str | None = None
        self._readers: dict[str, ShardReader] = {}
        self._order: list[str] = []
        self._parents: dict[str, str | None] = {}
        self._buffers: dict[str, deque[_Pending]] = {}
        self._shards_at = 0.0
        self._last_status = 0.0

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        log.info("poller: started for table %s, function %s", self.table, self.function)
        while not self.stop.is_set():
            try:
                busy = self.step()
            except StreamqError as exc:
                self._note_error(f"poller: {exc}")
                self._check_stream_replaced()
                busy = False
            except Exception as exc:
                self._note_error(f"poller: unexpected {type(exc).__name__}: {exc}")
                log.debug("%s", traceback.format_exc())
                busy = False
            self.write_status()
            self.polled_once.set()
            if self.metrics is not None:
                self.metrics.maybe_flush()
            if not busy:
                self.stop.wait(self.poll_interval)
        if self.metrics is not None:
            self.metrics.flush()
        self.counters.state = "stopped"
        self.write_status(force=True)
        log.info("poller: stopped")

    def step(self) -> bool:
        """One poll: returns True when it invoked the handler (poll again at once)."""
        self.counters.polls += 1
        mapping = self.mapping()
        if mapping is None:
            self.counters.state = "no trigger"
            return False
        self.counters.settings = _settings_view(mapping)
        if mapping.get("State") != "Enabled":
            self.counters.state = "disabled" if mapping.get("State") == "Disabled" else str(
                mapping.get("State"))
            return False
        if mapping.get("FilterCriteriaError"):
            # Its filter is encrypted and cannot be decrypted (the KMS key is disabled or
            # gone): which records it passes is unknown, so nothing is delivered.
            self.counters.state = "filter unreadable"
            return False
        self.counters.state = "polling"
        self._refresh_shards(mapping)
        for shard_id in self._order:
            parent = self._parents.get(shard_id)
            if parent in self._readers and not self._drained(parent):
                continue  # a child waits until its parent is read to the end
            if self._poll_shard(shard_id, mapping):
                return True
        return False

    # --------------------------------------------------------------- mapping

    def mapping(self) -> dict[str, Any] | None:
        client = self.aws.client("lambda")
        if self._uuid:
            try:
                with aws_errors():
                    m: dict[str, Any] = client.get_event_source_mapping(UUID=self._uuid)
                return m
            except StreamqError:
                self._uuid = None
        arn = self.stream_arn()
        with aws_errors():
            found = client.list_event_source_mappings(EventSourceArn=arn).get(
                "EventSourceMappings", [])
        found = [m for m in found
                 if m.get("FunctionArn", "").split(":function:")[-1].split(":")[0]
                 == self.function]
        if not found:
            return None
        self._uuid = str(found[0]["UUID"])
        self.counters.mapping_uuid = self._uuid
        # List hides an encrypted filter (null); Get shows it (or FilterCriteriaError).
        with aws_errors():
            got: dict[str, Any] = client.get_event_source_mapping(UUID=self._uuid)
        return got

    def _check_stream_replaced(self) -> None:
        """The table (or its stream) was recreated: start over on the new stream. A
        transient error keeps the checkpoint (re-reading would invoke twice)."""
        try:
            current = table_stream_arn(self.aws, self.table)
        except StreamqError:
            return
        if self._stream_arn is not None and current != self._stream_arn:
            log.info("poller: the table has a new stream %s; reading it from the start",
                     current)
            self._stream_arn = current
            self._uuid = None
            self._readers.clear()
            self._buffers.clear()
            self._parents.clear()
            self._order = []

    def stream_arn(self) -> str:
        if self._stream_arn is None:
            self._stream_arn = table_stream_arn(self.aws, self.table)
        return self._stream_arn

    def _refresh_shards(self, mapping: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._order and now - self._shards_at < 30:
            return
        self._shards_at = now
        info = describe_stream(self.aws, self.stream_arn())
        position = str(mapping.get("StartingPosition") or "TRIM_HORIZON")
        for shard in info.shards:
            if shard.shard_id not in self._readers:
                self._readers[shard.shard_id] = ShardReader(self.aws, info.arn, shard,
                                                            position=position)
                self._buffers[shard.shard_id] = deque()
            self._parents[shard.shard_id] = shard.parent_shard_id
        self._order = [s.shard_id for s in info.shards]

    def _drained(self, shard_id: str | None) -> bool:
        if shard_id is None:
            return True
        reader = self._readers[shard_id]
        return reader.exhausted and not self._buffers[shard_id]

    # ----------------------------------------------------------------- shard

    def _poll_shard(self, shard_id: str, mapping: dict[str, Any]) -> bool:
        reader, buf = self._readers[shard_id], self._buffers[shard_id]
        batch_size = int(mapping.get("BatchSize") or 100)
        window = float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
        patterns = [f.get("Pattern", "") for f in
                    ((mapping.get("FilterCriteria") or {}).get("Filters") or [])]
        if len(buf) < 1000:
            now = time.monotonic()
            fresh = reader.read()
            buf.extend(_Pending(raw, now) for raw in fresh)
            self._count(mapping, "polled", len(fresh))
        batch: list[dict[str, Any]] = []
        first_at: float | None = None
        consumed = 0
        for pending in buf:
            if len(batch) >= batch_size:
                break
            consumed += 1
            record = lambda_record(pending.raw, self.stream_arn(), self.region)
            try:
                passes, _ = evaluate_criteria(patterns, record)
            except FilterPatternError as exc:
                self._note_error(f"poller: invalid FilterCriteria, nothing is invoked: {exc}")
                return False
            if passes:
                batch.append(record)
                first_at = pending.read_at if first_at is None else first_at
        if not batch:
            self._consume(shard_id, consumed, filtered=consumed)
            self._count(mapping, "filtered_out", consumed)
            return False
        full = len(batch) >= batch_size
        if not full and first_at is not None and time.monotonic() - first_at < window:
            return False  # the batching window is still open: wait for more records
        dropped = consumed - len(batch)
        if self._deliver(batch, mapping, shard_id):
            self._consume(shard_id, consumed, filtered=dropped)
            self._count(mapping, "filtered_out", dropped)
        return True

    def _consume(self, shard_id: str, n: int, *, filtered: int) -> None:
        buf, reader = self._buffers[shard_id], self._readers[shard_id]
        last = None
        for _ in range(n):
            last = buf.popleft()
        if last is not None:
            seq = str(last.raw["dynamodb"]["SequenceNumber"])
            reader.commit(seq)
            self.counters.checkpoint = seq
        if filtered:
            self.counters.records_filtered += filtered
            log.info("poller: %d record(s) dropped by the filter", filtered)

    # -------------------------------------------------------------- delivery

    def _deliver(self, records: list[dict[str, Any]], mapping: dict[str, Any],
                 shard_id: str) -> bool:
        """Invoke until every record is delivered or discarded (retries, bisect, DLQ).
        False when it stopped first (shutdown, or the trigger was disabled during the
        retries): the checkpoint stays, the batch is read again once enabled."""
        work: deque[tuple[list[dict[str, Any]], int, int]] = deque([(records, 0, 0)])
        while work:
            recs, retries, invokes = work.popleft()
            max_age = int(_num(mapping.get("MaximumRecordAgeInSeconds"), -1))
            if max_age >= 0:
                now = self.clock()
                fresh: list[dict[str, Any]] = []
                expired: list[dict[str, Any]] = []
                for r in recs:
                    age = now - r["dynamodb"]["ApproximateCreationDateTime"]
                    (fresh if age <= max_age else expired).append(r)
                if expired:
                    self.counters.records_expired += len(expired)
                    self._discard(expired, mapping, shard_id, "RecordAgeExceeded", invokes,
                                  None)
                recs = fresh
            if not recs:
                continue
            outcome = self._invoke(recs, mapping)
            invokes += 1
            if outcome.ok:
                self.counters.records_handled += len(recs)
                continue
            if outcome.failed_from:
                self.counters.records_handled += outcome.failed_from
                recs = recs[outcome.failed_from:]
            bisect = bool(mapping.get("BisectBatchOnFunctionError"))
            if bisect and outcome.failed_from is None and len(recs) > 1:
                half = len(recs) // 2
                self.counters.bisects += 1
                log.info("poller: bisecting a failed batch of %d into %d + %d",
                         len(recs), half, len(recs) - half)
                work.appendleft((recs[half:], retries, invokes))
                work.appendleft((recs[:half], retries, invokes))
                continue
            max_retries = int(_num(mapping.get("MaximumRetryAttempts"), -1))
            if 0 <= max_retries <= retries:
                self._discard(recs, mapping, shard_id, "RetryAttemptsExhausted", invokes,
                              outcome)
                continue
            if self.stop.is_set():
                return False
            delay = min(self.retry_delay * (2 ** retries), self.max_retry_delay)
            self.counters.retries += 1
            log.info("poller: retrying %d record(s) in %.1fs (retry %d of %s)", len(recs),
                     delay, retries + 1, "unlimited" if max_retries < 0 else max_retries)
            self.write_status()
            self.stop.wait(delay)
            fresh_mapping = self.mapping()
            if fresh_mapping is not None:
                mapping = fresh_mapping  # a config change during retries takes effect
                if mapping.get("State") != "Enabled":
                    log.info("poller: the trigger was disabled during retries; the batch "
                             "stays at the checkpoint")
                    return False
            work.appendleft((recs, retries + 1, invokes))
        return True

    def _invoke(self, recs: list[dict[str, Any]], mapping: dict[str, Any]) -> _Outcome:
        context = LambdaContext(str(mapping.get("FunctionArn", self.function)))
        event = {"Records": recs}
        self.counters.invocations += 1
        self.counters.last_invocation_at = time.time()
        first, last = recs[0]["dynamodb"]["SequenceNumber"], recs[-1]["dynamodb"][
            "SequenceNumber"]
        started = time.monotonic()
        # IteratorAge: the age of the last record of the batch when it is sent.
        age_ms = (time.time() - float(recs[-1]["dynamodb"]["ApproximateCreationDateTime"])
                  ) * 1000
        self._count(mapping, "invoked", len(recs))
        try:
            response = self.handler(event, context)
        except Exception as exc:
            self._published_invocation(mapping, len(recs), True, started, age_ms)
            self.counters.function_errors += 1
            error = f"{type(exc).__name__}: {exc}"
            self._note_error(f"handler failed on {len(recs)} record(s) "
                             f"[{first}..{last}]: {error}")
            trace = traceback.format_exc().rstrip().splitlines()
            log.info("handler traceback:\n  %s", "\n  ".join(trace[-12:]))
            return _Outcome(False, None, error, context.aws_request_id)
        took = time.monotonic() - started
        self._published_invocation(mapping, 0, False, started, age_ms)
        if "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []):
            failed_from, bad = _partial(response, recs)
            if bad:
                self.counters.function_errors += 1
                self._note_error(f"handler returned an invalid batchItemFailures ({bad}): "
                                 "the whole batch failed")
                return _Outcome(False, None, bad, context.aws_request_id)
            if failed_from is not None:
                self._count(mapping, "failed_invoke", len(recs) - failed_from)
                log.info("poller: batch of %d [%s..%s]: %d record(s) reported failed",
                         len(recs), first, last, len(recs) - failed_from)
                return _Outcome(False, failed_from, "batchItemFailures",
                                context.aws_request_id)
        log.info("poller: invoked with %d record(s) [%s..%s] ok in %.2fs", len(recs), first,
                 last, took)
        return _Outcome(True, request_id=context.aws_request_id)

    def _discard(self, recs: list[dict[str, Any]], mapping: dict[str, Any], shard_id: str,
                 condition: str, invokes: int, outcome: _Outcome | None) -> None:
        self.counters.records_discarded += len(recs)
        message = failure_message(recs, mapping, shard_id, condition, invokes, outcome,
                                  self.stream_arn())
        dest = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination")
        if not dest:
            self._count(mapping, "dropped", len(recs))
            log.info("poller: discarded %d record(s) (%s); no on-failure destination",
                     len(recs), condition)
            return
        try:
            send_to_destination(self.aws, str(dest), message, records=recs,
                                esm_uuid=str(mapping.get("UUID") or self._uuid or ""),
                                shard_id=shard_id)
        except StreamqError as exc:
            self._note_error(f"poller: cannot send to the on-failure destination: {exc}")
            if self.metrics is not None:
                self.metrics.destination_failure()
            self._count(mapping, "dropped", len(recs))
            return
        self._count(mapping, "destination_delivered", len(recs))
        self.counters.dlq_messages += 1
        log.info("poller: discarded %d record(s) (%s); sent the invocation record to %s",
                 len(recs), condition, dest)

    # --------------------------------------------------------------- metrics

    def _count(self, mapping: dict[str, Any], key: str, n: int) -> None:
        # AWS also emits zeros (an empty poll, a record the filter passes); the sandbox
        # leaves them out rather than put a datapoint four times a second per shard.
        if self.metrics is not None and n:
            self.metrics.mapping_count(mapping, key, n)

    def _published_invocation(self, mapping: dict[str, Any], failed: int, error: bool,
                              started: float, age_ms: float) -> None:
        if self.metrics is None:
            return
        self.metrics.invocation(error=error, duration_ms=(time.monotonic() - started) * 1000,
                                iterator_age_ms=age_ms)
        self._count(mapping, "failed_invoke", failed)

    # ---------------------------------------------------------------- status

    def _note_error(self, text: str) -> None:
        self.counters.last_error = text
        log.warning("%s", text)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.counters.updated_at = time.time()
            return asdict(self.counters)

    def write_status(self, force: bool = False) -> None:
        if self.status_path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_status < 0.5:
            return
        self._last_status = now
        write_private(self.status_path, json.dumps(self.snapshot(), indent=2, default=str))


def _num(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _partial(response: Any, recs: list[dict[str, Any]]) -> tuple[int | None, str | None]:
    """(index of the lowest reported failure or None, reason the response is invalid)."""
    if not isinstance(response, dict):
        return None, None
    failures = response.get("batchItemFailures")
    if not failures:
        return None, None
    index = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(recs)}
    lowest: int | None = None
    for f in failures:
        ident = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not ident or not isinstance(ident, str) or ident not in index:
            return None, f"itemIdentifier {ident!r}"
        lowest = index[ident] if lowest is None else min(lowest, index[ident])
    return lowest, None


def _settings_view(mapping: dict[str, Any]) -> dict[str, Any]:
    keys = ("State", "BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError", "ParallelizationFactor",
            "FunctionResponseTypes", "FilterCriteria", "DestinationConfig")
    return {k: mapping.get(k) for k in keys}


def failure_message(recs: list[dict[str, Any]], mapping: dict[str, Any], shard_id: str,
                    condition: str, invokes: int, outcome: _Outcome | None,
                    stream_arn: str) -> dict[str, Any]:
    """The invocation record Lambda sends to a stream's on-failure destination: metadata
    and a pointer to the records (DDBStreamBatchInfo), never the records themselves."""
    first, last = recs[0]["dynamodb"], recs[-1]["dynamodb"]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if outcome is not None and outcome.failed_from is None:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": (outcome.request_id if outcome and outcome.request_id
                          else str(uuid.uuid4())),
            "functionArn": str(mapping.get("FunctionArn", "")),
            "condition": condition,
            "approximateInvokeCount": invokes,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_ms(time.time()),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": str(first["SequenceNumber"]),
            "endSequenceNumber": str(last["SequenceNumber"]),
            "approximateArrivalOfFirstRecord": iso_seconds(epoch(first[
                "ApproximateCreationDateTime"])),
            "approximateArrivalOfLastRecord": iso_seconds(epoch(last[
                "ApproximateCreationDateTime"])),
            "batchSize": len(recs),
            "streamArn": stream_arn,
        },
    }


def s3_failure_key(esm_uuid: str, shard_id: str, when: float | None = None) -> str:
    """Where Lambda puts a stream trigger's invocation record in an S3 destination:
    ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>``
    (Lambda Developer Guide, "services-dynamodb-errors": Retain discarded records for a
    DynamoDB event source, "Example Amazon S3 invocation record")."""
    at = datetime.fromtimestamp(time.time() if when is None else when, tz=timezone.utc)
    return (f"aws/lambda/{esm_uuid}/{shard_id}/{at:%Y/%m/%d}/{at:%Y-%m-%dT%H.%M.%S}-"
            f"{uuid.uuid4()}")


def send_to_destination(aws: Aws, destination_arn: str, message: dict[str, Any], *,
                        records: list[dict[str, Any]] | None = None, esm_uuid: str = "",
                        shard_id: str = "") -> None:
    """Send an invocation record as Lambda does (Lambda Developer Guide,
    "invocation-async-retain-records" and "services-dynamodb-errors"):

    * an SQS queue ARN: the record is the message body;
    * an S3 bucket ARN (``arn:aws:s3:::BUCKET``): the record, plus ``payload`` (the whole
      event the function got, ``{"Records": [...]}``, as an escaped JSON string), is a JSON
      object under :func:`s3_failure_key`.

    SNS topics are not emulated (moto does not deliver them anywhere the sandbox reads)."""
    parts = destination_arn.split(":")
    if len(parts) >= 6 and parts[2] == "s3":
        body = dict(message)
        body["payload"] = json.dumps({"Records": records or []})
        with aws_errors():
            aws.client("s3").put_object(Bucket=parts[5], Key=s3_failure_key(esm_uuid, shard_id),
                                        Body=json.dumps(body).encode(),
                                        ContentType="application/json")
        return
    if len(parts) < 6 or parts[2] != "sqs":
        raise StreamqError(f"unsupported on-failure destination {destination_arn} "
                           "(the sandbox sends to SQS queues and S3 buckets)")
    sqs = aws.client("sqs")
    with aws_errors():
        url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
