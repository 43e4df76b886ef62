"""A DynamoDB Streams shard reader: shards with lineage, iterators from a checkpoint,
GetRecords paging, and decoding records into the shape a Lambda function receives.

Used by the sandbox poller (which emulates the Lambda trigger) and by tests that
want to see what the stream holds.

AWS facts relied on (DynamoDB Streams API reference, Lambda developer guide):

* ``DescribeStream`` pages shards with ``ExclusiveStartShardId`` /
  ``LastEvaluatedShardId``; a shard has a ``ParentShardId`` and a
  ``SequenceNumberRange``; an open shard has no ``EndingSequenceNumber``.
  A child shard must be read only after its parent is fully read.
* ``GetShardIterator`` types: ``TRIM_HORIZON``, ``LATEST``,
  ``AT_SEQUENCE_NUMBER``, ``AFTER_SEQUENCE_NUMBER``; a checkpoint (the last
  processed sequence number) resumes with ``AFTER_SEQUENCE_NUMBER``.
* ``GetRecords`` returns at most 1000 records and a ``NextShardIterator``
  (absent once a closed shard is exhausted).
* A Lambda event record carries ``eventID``, ``eventName``, ``eventVersion``
  (``1.1``), ``eventSource`` (``aws:dynamodb``), ``awsRegion``, ``dynamodb``
  (``ApproximateCreationDateTime`` in epoch seconds, ``Keys``, ``NewImage``,
  ``OldImage``, ``SequenceNumber``, ``SizeBytes``, ``StreamViewType``) and
  ``eventSourceARN``; binary attribute values are base64 text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .aws import Aws, aws_errors, error_code
from .errors import NotFound, StreamqError

GET_RECORDS_MAX = 1000


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_shard_id: str | None
    starting_sequence_number: str
    ending_sequence_number: str | None = None

    @property
    def is_open(self) -> bool:
        return self.ending_sequence_number is None


@dataclass(frozen=True)
class StreamInfo:
    arn: str
    status: str
    view_type: str
    table: str
    shards: tuple[Shard, ...]


def describe_stream(aws: Aws, stream_arn: str) -> StreamInfo:
    """The stream and all its shards (every DescribeStream page)."""
    client = aws.client("dynamodbstreams")
    shards: list[Shard] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    desc: dict[str, Any] = {}
    while True:
        with aws_errors():
            desc = client.describe_stream(**kwargs)["StreamDescription"]
        for s in desc.get("Shards", []):
            rng = s.get("SequenceNumberRange", {})
            shards.append(Shard(s["ShardId"], s.get("ParentShardId"),
                                str(rng.get("StartingSequenceNumber", "")),
                                rng.get("EndingSequenceNumber")))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    return StreamInfo(stream_arn, str(desc.get("StreamStatus", "")),
                      str(desc.get("StreamViewType", "")), str(desc.get("TableName", "")),
                      tuple(lineage_order(shards)))


def lineage_order(shards: list[Shard]) -> list[Shard]:
    """Parents before children (a parent missing from the list, e.g. trimmed, is ignored);
    siblings keep their starting-sequence order."""
    known = {s.shard_id for s in shards}
    by_parent: dict[str | None, list[Shard]] = {}
    for s in shards:
        parent = s.parent_shard_id if s.parent_shard_id in known else None
        by_parent.setdefault(parent, []).append(s)
    out: list[Shard] = []
    todo = sorted(by_parent.get(None, []), key=_seq_key, reverse=True)
    while todo:
        shard = todo.pop()
        out.append(shard)
        todo.extend(sorted(by_parent.get(shard.shard_id, []), key=_seq_key, reverse=True))
    return out


def _seq_key(shard: Shard) -> tuple[int, str]:
    try:
        return int(shard.starting_sequence_number), shard.shard_id
    except ValueError:
        return 0, shard.shard_id


def shard_iterator(aws: Aws, stream_arn: str, shard_id: str, *, checkpoint: str | None = None,
                   position: str = "TRIM_HORIZON", timestamp: float | None = None) -> str:
    """An iterator just after ``checkpoint``, or at ``position`` when there is none
    (``AT_TIMESTAMP`` takes ``timestamp``, epoch seconds)."""
    kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
    if checkpoint:
        kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
    else:
        kwargs["ShardIteratorType"] = position
        if position == "AT_TIMESTAMP":
            kwargs["Timestamp"] = _dt.datetime.fromtimestamp(timestamp or 0,
                                                             tz=_dt.timezone.utc)
    with aws_errors():
        return str(aws.client("dynamodbstreams").get_shard_iterator(**kwargs)["ShardIterator"])


def get_records(aws: Aws, iterator: str, limit: int = GET_RECORDS_MAX) -> tuple[
        list[dict[str, Any]], str | None]:
    """One GetRecords page: (raw records, next iterator or None when the shard is done)."""
    with aws_errors():
        page = aws.client("dynamodbstreams").get_records(ShardIterator=iterator,
                                                         Limit=min(limit, GET_RECORDS_MAX))
    return list(page.get("Records", [])), page.get("NextShardIterator")


class ShardReader:
    """Reads one shard forward from a checkpoint, keeping the iterator between calls."""

    def __init__(self, aws: Aws, stream_arn: str, shard: Shard, *,
                 checkpoint: str | None = None, position: str = "TRIM_HORIZON",
                 timestamp: float | None = None) -> None:
        self.aws, self.stream_arn, self.shard = aws, stream_arn, shard
        self.checkpoint = checkpoint
        self.position = position
        self.timestamp = timestamp
        self._iterator: str | None = None
        self.exhausted = False

    def read(self, limit: int = GET_RECORDS_MAX) -> list[dict[str, Any]]:
        """The next page of raw records (possibly empty). Moves the read position,
        not the checkpoint: call :meth:`commit` once records are processed."""
        if self.exhausted:
            return []
        if self._iterator is None:
            self._iterator = shard_iterator(self.aws, self.stream_arn, self.shard.shard_id,
                                            checkpoint=self.checkpoint, position=self.position,
                                            timestamp=self.timestamp)
        records, nxt = get_records(self.aws, self._iterator, limit)
        if nxt is None:
            self.exhausted = True
        self._iterator = nxt
        return records

    def commit(self, sequence_number: str) -> None:
        self.checkpoint = sequence_number

    def rewind(self) -> None:
        """Read again from the checkpoint (drops the read-ahead)."""
        self._iterator = None
        self.exhausted = False


def read_stream(aws: Aws, stream_arn: str, *, position: str = "TRIM_HORIZON",
                region: str = "us-east-1") -> Iterator[dict[str, Any]]:
    """Every record now in the stream, shard by shard in lineage order, as Lambda
    event records. Stops at the end of each open shard (does not wait)."""
    info = describe_stream(aws, stream_arn)
    for shard in info.shards:
        reader = ShardReader(aws, stream_arn, shard, position=position)
        while True:
            page = reader.read()
            for raw in page:
                yield lambda_record(raw, stream_arn, region)
            if not page or reader.exhausted:
                break


def table_stream_arn(aws: Aws, table: str) -> str:
    with aws_errors():
        desc = aws.client("dynamodb").describe_table(TableName=table)["Table"]
    arn = desc.get("LatestStreamArn")
    if not arn or not desc.get("StreamSpecification", {}).get("StreamEnabled"):
        raise NotFound(f"table {table!r} has no stream enabled")
    return str(arn)


# --------------------------------------------------------------------------- following


class ShardTracker:
    """Which shards to read, as the stream's shards come and go (pure bookkeeping).

    A shard is readable once its parent is done (read to its end) or unknown to us (a
    parent trimmed from the stream, or closed before we started); shards that appear
    later are read from their beginning, so a split never loses records. Closed shards
    present when following starts at LATEST are skipped: they hold only old records."""

    def __init__(self) -> None:
        self.known: dict[str, Shard] = {}
        self.done: set[str] = set()
        self.started = False

    def update(self, shards: Iterable[Shard], *, from_latest: bool) -> list[tuple[Shard, str]]:
        """Take the stream's current shards; returns the new ones with the iterator type
        each starts at (LATEST, TRIM_HORIZON or START: the position asked for)."""
        fresh: list[tuple[Shard, str]] = []
        for shard in lineage_order(list(shards)):
            if shard.shard_id in self.known:
                # A shard we know may have closed since: keep its new range.
                self.known[shard.shard_id] = shard
                continue
            self.known[shard.shard_id] = shard
            if not self.started:
                if from_latest and not shard.is_open:
                    self.done.add(shard.shard_id)
                    continue
                fresh.append((shard, "START"))
            else:
                fresh.append((shard, "TRIM_HORIZON"))
        self.started = True
        return fresh

    def readable(self, shard_id: str) -> bool:
        if shard_id in self.done:
            return False
        parent = self.known[shard_id].parent_shard_id
        return parent is None or parent not in self.known or parent in self.done

    def finish(self, shard_id: str) -> None:
        self.done.add(shard_id)

    def forget_missing(self, present: set[str]) -> None:
        """Shards trimmed from the stream (24 h after they closed) leave the bookkeeping;
        their children stay readable."""
        for shard_id in list(self.known):
            if shard_id not in present and shard_id in self.done:
                del self.known[shard_id]


_EXPIRED = {"ExpiredIteratorException"}
_TRIMMED = {"TrimmedDataAccessException"}


class StreamFollower:
    """Follows a stream live across every shard: parents before children, new shards
    picked up as they appear (DescribeStream every ``describe_every`` seconds), each
    open shard polled about every ``poll_interval`` seconds while idle.

    ``start``: ``LATEST`` (only what is written from now on), ``TRIM_HORIZON`` (all the
    stream holds, up to 24 h) or ``AT_TIMESTAMP`` with ``at`` (epoch seconds: DynamoDB
    Streams' GetShardIterator takes AT_TIMESTAMP with a Timestamp, botocore's
    dynamodbstreams model; an endpoint that refuses it, such as moto, is read from
    TRIM_HORIZON, and records older than ``at`` are skipped either way).

    An iterator that expired (15 minutes unused) is re-created after the last record
    read; a position trimmed away restarts at TRIM_HORIZON."""

    def __init__(self, aws: Aws, stream_arn: str, *, start: str = "LATEST",
                 at: float | None = None, poll_interval: float = 0.5,
                 describe_every: float = 10.0) -> None:
        self.aws, self.stream_arn = aws, stream_arn
        self.start, self.at = start, at
        self.poll_interval, self.describe_every = poll_interval, describe_every
        self.tracker = ShardTracker()
        self.readers: dict[str, ShardReader] = {}
        self._described_at = -math.inf
        self.at_timestamp_supported = True

    @property
    def shard_count(self) -> int:
        return len(self.readers) + len(self.tracker.done - set(self.readers))

    def _position(self, kind: str) -> str:
        if kind == "START":
            return self.start
        return kind

    def refresh(self) -> None:
        info = describe_stream(self.aws, self.stream_arn)
        self._described_at = time.monotonic()
        for shard, kind in self.tracker.update(info.shards,
                                               from_latest=self.start == "LATEST"):
            self.readers[shard.shard_id] = ShardReader(self.aws, self.stream_arn, shard,
                                                       position=self._position(kind),
                                                       timestamp=self.at)
        self.tracker.forget_missing({s.shard_id for s in info.shards})

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        """One round over the readable shards: (shard id, raw record) in stream order per
        shard. Re-describes the stream when due."""
        if time.monotonic() - self._described_at >= self.describe_every:
            self.refresh()
        out: list[tuple[str, dict[str, Any]]] = []
        for shard_id in list(self.readers):
            if not self.tracker.readable(shard_id):
                continue
            reader = self.readers[shard_id]
            try:
                records = reader.read()
            except StreamqError as exc:
                code = error_code(exc.__cause__) if exc.__cause__ is not None else ""
                if reader.position == "AT_TIMESTAMP" and reader.checkpoint is None:
                    # An endpoint without AT_TIMESTAMP (moto): read from the oldest
                    # record; older records are skipped below anyway.
                    self.at_timestamp_supported = False
                    reader.position = "TRIM_HORIZON"
                    reader.rewind()
                    continue
                if code in _EXPIRED:
                    reader.rewind()
                    continue
                if code in _TRIMMED:
                    reader.checkpoint, reader.position = None, "TRIM_HORIZON"
                    reader.rewind()
                    continue
                if isinstance(exc, NotFound):
                    # The shard (or the stream) is gone: stop reading it.
                    self.tracker.finish(shard_id)
                    del self.readers[shard_id]
                    continue
                raise
            for raw in records:
                seq = str(raw.get("dynamodb", {}).get("SequenceNumber", ""))
                if seq:
                    reader.commit(seq)
                if self.at is not None and epoch(raw.get("dynamodb", {}).get(
                        "ApproximateCreationDateTime", 0)) < math.floor(self.at):
                    continue
                out.append((shard_id, raw))
            if reader.exhausted:
                self.tracker.finish(shard_id)
                del self.readers[shard_id]
        return out

    def follow(self, stop: threading.Event | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record from the start position on, until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            batch = self.poll()
            yield from batch
            if not batch:
                stop.wait(self.poll_interval)


# --------------------------------------------------------------------------- decoding


def epoch(value: Any) -> float:
    """ApproximateCreationDateTime as epoch seconds (boto3 gives a datetime)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return float(value.timestamp())
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        parsed = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return float(parsed.timestamp())


def wire_value(av: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as JSON-able Lambda event text: binary as base64."""
    ((kind, value),) = av.items()
    if kind == "B":
        return {"B": _b64(value)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in value]}
    if kind == "M":
        return {"M": {k: wire_value(v) for k, v in value.items()}}
    if kind == "L":
        return {"L": [wire_value(v) for v in value]}
    return {kind: value}


def _b64(value: Any) -> str:
    return base64.b64encode(value).decode() if isinstance(value, (bytes, bytearray)) else str(
        value)


def wire_image(image: dict[str, Any]) -> dict[str, Any]:
    return {k: wire_value(v) for k, v in image.items()}


def lambda_record(raw: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record -> the record as Lambda puts it in ``event["Records"]``."""
    src = raw.get("dynamodb", {})
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(epoch(src.get("ApproximateCreationDateTime", 0))),
        "Keys": wire_image(src.get("Keys", {})),
    }
    if "NewImage" in src:
        ddb["NewImage"] = wire_image(src["NewImage"])
    if "OldImage" in src:
        ddb["OldImage"] = wire_image(src["OldImage"])
    ddb["SequenceNumber"] = str(src.get("SequenceNumber", ""))
    ddb["SizeBytes"] = int(src.get("SizeBytes", 0))
    ddb["StreamViewType"] = str(src.get("StreamViewType", ""))
    record: dict[str, Any] = {
        "eventID": str(raw.get("eventID", "")),
        "eventName": str(raw.get("eventName", "")),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": str(raw.get("awsRegion") or region),
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        record["userIdentity"] = dict(raw["userIdentity"])
    return record


# --------------------------------------------------------------------------- ranges


@dataclass
class RangeRead:
    """The records of one shard from a start to an end sequence number (both included).
    ``complete``: the end was reached; else ``missing`` says what the stream lacks."""

    records: list[dict[str, Any]]
    complete: bool
    missing: str | None = None


def read_range(aws: Aws, stream_arn: str, shard_id: str, start: str, end: str, *,
               max_empty_pages: int = 5, empty_wait: float = 0.2) -> RangeRead:
    """Read ``shard_id`` from ``start`` (an AT_SEQUENCE_NUMBER iterator) to ``end``,
    page after page, stopping at the shard's end (a closed shard has no next iterator).

    DynamoDB Streams API reference: GetShardIterator answers TrimmedDataAccessException
    for a sequence number older than the stream's 24-hour trim horizon, and
    ResourceNotFoundException for a stream or shard that no longer exists; GetRecords may
    return an empty page before a later one has records, so an open shard is given up on
    only after ``max_empty_pages`` empty pages in a row. What cannot be read is reported
    in ``missing``, never guessed."""
    from botocore.exceptions import ClientError

    from .aws import error_code, translate

    client = aws.client("dynamodbstreams")
    first, last = int(start), int(end)

    def gone(exc: ClientError) -> str | None:
        code = error_code(exc)
        if code == "TrimmedDataAccessException":
            return ("trimmed: the stream no longer holds these records (it keeps them for "
                    "24 hours)")
        if code == "ResourceNotFoundException":
            return "the stream or its shard no longer exists (shards expire after 24 hours)"
        if code in ("ValidationException", "InvalidArgumentException"):
            return f"the shard does not hold sequence number {start}"
        return None

    try:
        resp = client.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id,
                                         ShardIteratorType="AT_SEQUENCE_NUMBER",
                                         SequenceNumber=start)
    except ClientError as exc:
        why = gone(exc)
        if why is None:
            raise (translate(exc) or exc) from exc
        return RangeRead([], False, why)
    iterator: str | None = resp.get("ShardIterator")
    out: list[dict[str, Any]] = []
    empty = 0
    while iterator:
        try:
            page = client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_MAX)
        except ClientError as exc:
            why = gone(exc)
            if why is None:
                raise (translate(exc) or exc) from exc
            return RangeRead(out, False, why)
        records = page.get("Records") or []
        iterator = page.get("NextShardIterator")
        empty = 0 if records else empty + 1
        for raw in records:
            seq = int(str(raw.get("dynamodb", {}).get("SequenceNumber", "0")))
            if not out and seq != first:
                return RangeRead([], False, f"the shard does not hold sequence number {start}"
                                 " (its records from there were trimmed)")
            if seq > last:
                return RangeRead(out, False, f"the shard does not hold sequence number {end}")
            out.append(raw)
            if seq == last:
                return RangeRead(out, True)
        if not records and empty >= max_empty_pages:
            break
        if not records:
            time.sleep(empty_wait)
    return RangeRead(out, False, f"the shard ends before sequence number {end}"
                     if iterator is None else
                     f"the shard holds no records up to sequence number {end}")
