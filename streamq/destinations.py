"""The trigger's on-failure destination: read, parse and settle the invocation records
Lambda sends when it gives up on a batch of stream records.

AWS facts relied on (AWS Lambda Developer Guide):

* "services-dynamodb-errors" (Retain discarded records for a DynamoDB event source in
  Lambda): when retries are exhausted (``RetryAttemptsExhausted``) or a record is older
  than the maximum age (``RecordAgeExceeded``) Lambda discards the batch and sends the
  destination a JSON *invocation record*: ``requestContext`` (requestId, functionArn,
  condition, approximateInvokeCount), ``responseContext`` (statusCode, executedVersion,
  functionError), ``version``, ``timestamp`` and ``DDBStreamBatchInfo`` (shardId,
  start/endSequenceNumber, approximateArrivalOfFirst/LastRecord, batchSize, streamArn).
  For SQS and SNS that is all: "The actual records aren't included, so you must process
  this record and retrieve them from the stream before they expire". For an S3 bucket the
  object also has ``payload``: "the original invocation record as an escaped JSON
  string" (the event the function got, ``{"Records": [...]}``), and the object's key is
  ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>``.
* "invocation-async-retain-records" (Capturing records of Lambda asynchronous
  invocations): an SQS queue or SNS topic gets the invocation record as the ``Message``;
  an S3 bucket stores it as a JSON object; an SNS message is at most 256 KB.
* SNS delivers to a subscribed SQS queue inside a JSON envelope (``"Type":
  "Notification"``, the record as the ``Message`` string) unless raw message delivery is
  on (Amazon SNS Developer Guide, "sns-large-payload-raw-message-delivery"); both forms
  are read here.

Nothing here deletes or tags a message the caller did not hand back as settled: a
message that is not such a record, or not for the caller's table, stays where it is.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .aws import Aws, aws_errors
from .errors import AwsError, BadInput, NotFound

#: The documented conditions (Lambda DG, services-dynamodb-errors / kinesis-on-failure).
CONDITIONS = {"RetryAttemptsExhausted": "retries exhausted",
              "RecordAgeExceeded": "record age exceeded"}
#: Where Lambda puts a stream trigger's records in an S3 destination.
S3_PREFIX = "aws/lambda/"
#: The tag redrive puts on an S3 record it has fully handled (unless --delete).
DONE_TAG = "streamq-redrive"
DONE_VALUE = "done"
SQS_MAX_VISIBILITY = 43200  # 12 hours (SQS API reference, ChangeMessageVisibility)
DEFAULT_VISIBILITY = 120

_SEQ = re.compile(r"^\d{1,64}$")
_STREAM_ARN = re.compile(
    r"^arn:aws[a-zA-Z0-9-]*:dynamodb:([a-z0-9-]*):(\d*):table/([^/]+)/stream/(.+)$")


# --------------------------------------------------------------------------- parsing


class NotAnInvocationRecord(ValueError):
    """The text is not a stream trigger's invocation record (says why)."""


@dataclass(frozen=True)
class BatchInfo:
    """``DDBStreamBatchInfo``: where the discarded batch is in the stream."""

    shard_id: str
    start: str  # startSequenceNumber
    end: str  # endSequenceNumber
    stream_arn: str
    batch_size: int | None = None
    first_arrival: str | None = None  # approximateArrivalOfFirstRecord
    last_arrival: str | None = None

    @property
    def table(self) -> str | None:
        """The table whose stream this is (None: not a DynamoDB stream ARN)."""
        m = _STREAM_ARN.match(self.stream_arn)
        return m.group(3) if m else None

    @property
    def region(self) -> str | None:
        m = _STREAM_ARN.match(self.stream_arn)
        return m.group(1) if m and m.group(1) else None

    def to_json(self) -> dict[str, Any]:
        return {"shard_id": self.shard_id, "start_sequence_number": self.start,
                "end_sequence_number": self.end, "batch_size": self.batch_size,
                "approximate_arrival_of_first_record": self.first_arrival,
                "approximate_arrival_of_last_record": self.last_arrival,
                "stream_arn": self.stream_arn}


@dataclass(frozen=True)
class InvocationRecord:
    condition: str
    batch: BatchInfo
    version: str
    timestamp: str
    request_id: str | None = None
    function_arn: str | None = None
    invoke_count: int | None = None
    status_code: int | None = None
    function_error: str | None = None
    #: The event's records from ``payload`` (S3 destinations only; None: no payload).
    records: list[dict[str, Any]] | None = None

    @property
    def condition_text(self) -> str:
        return CONDITIONS.get(self.condition, self.condition)

    def to_json(self) -> dict[str, Any]:
        return {"condition": self.condition, "timestamp": self.timestamp,
                "version": self.version, "request_id": self.request_id,
                "function_arn": self.function_arn,
                "approximate_invoke_count": self.invoke_count,
                "function_error": self.function_error, "batch": self.batch.to_json(),
                "payload_records": None if self.records is None else len(self.records)}


def _obj(doc: Any, name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise NotAnInvocationRecord(f"no {name} object")
    return value


def _str(doc: dict[str, Any], name: str, where: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise NotAnInvocationRecord(f"{where}.{name} is not a non-empty string")
    return value


def _opt_str(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) else None


def _int(doc: dict[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def unwrap_sns(doc: Any) -> Any:
    """An SNS notification delivered to SQS without raw message delivery carries the
    published message as its ``Message`` string; anything else is returned as is."""
    if (isinstance(doc, dict) and doc.get("Type") == "Notification"
            and isinstance(doc.get("Message"), str)):
        try:
            return json.loads(doc["Message"])
        except ValueError:
            raise NotAnInvocationRecord("an SNS notification whose Message is not JSON"
                                        ) from None
    return doc


def parse_record(body: str | bytes) -> InvocationRecord:
    """Parse one message body or S3 object as a DynamoDB stream trigger's invocation
    record (see the module docstring for the format). Raises NotAnInvocationRecord."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotAnInvocationRecord("not UTF-8 text") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise NotAnInvocationRecord("not JSON") from None
    doc = unwrap_sns(doc)
    if not isinstance(doc, dict):
        raise NotAnInvocationRecord("not a JSON object")
    if "DDBStreamBatchInfo" not in doc:
        other = next((k for k in doc if k.endswith("BatchInfo")), None)
        raise NotAnInvocationRecord(
            f"has {other}, not DDBStreamBatchInfo: not from a DynamoDB stream trigger"
            if other else "no DDBStreamBatchInfo: not a stream trigger's invocation record")
    ctx = _obj(doc, "requestContext")
    info = _obj(doc, "DDBStreamBatchInfo")
    condition = _str(ctx, "condition", "requestContext")
    shard = _str(info, "shardId", "DDBStreamBatchInfo")
    start = _str(info, "startSequenceNumber", "DDBStreamBatchInfo")
    end = _str(info, "endSequenceNumber", "DDBStreamBatchInfo")
    arn = _str(info, "streamArn", "DDBStreamBatchInfo")
    for name, seq in (("startSequenceNumber", start), ("endSequenceNumber", end)):
        if not _SEQ.match(seq):
            raise NotAnInvocationRecord(f"DDBStreamBatchInfo.{name} {seq!r} is not a "
                                        "sequence number")
    if int(start) > int(end):
        raise NotAnInvocationRecord("DDBStreamBatchInfo: startSequenceNumber is after "
                                    "endSequenceNumber")
    if not _STREAM_ARN.match(arn):
        raise NotAnInvocationRecord(f"DDBStreamBatchInfo.streamArn {arn!r} is not a "
                                    "DynamoDB stream ARN")
    version = _str(doc, "version", "record")
    timestamp = _str(doc, "timestamp", "record")
    response = doc.get("responseContext")
    response = response if isinstance(response, dict) else {}
    batch = BatchInfo(shard_id=shard, start=start, end=end, stream_arn=arn,
                      batch_size=_int(info, "batchSize"),
                      first_arrival=_opt_str(info, "approximateArrivalOfFirstRecord"),
                      last_arrival=_opt_str(info, "approximateArrivalOfLastRecord"))
    records = None
    if "payload" in doc:
        records = parse_payload(doc["payload"])
    return InvocationRecord(
        condition=condition, batch=batch, version=version, timestamp=timestamp,
        request_id=_opt_str(ctx, "requestId"), function_arn=_opt_str(ctx, "functionArn"),
        invoke_count=_int(ctx, "approximateInvokeCount"),
        status_code=_int(response, "statusCode"),
        function_error=_opt_str(response, "functionError"),
        records=records)


def parse_payload(payload: Any) -> list[dict[str, Any]]:
    """``payload`` of an S3 record: the event as an escaped JSON string (an object is
    accepted too) -> its records, each with ``dynamodb.Keys``."""
    event = payload
    if isinstance(payload, str):
        try:
            event = json.loads(payload)
        except ValueError:
            raise NotAnInvocationRecord("payload is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise NotAnInvocationRecord("payload has no Records list")
    records: list[dict[str, Any]] = event["Records"]
    for n, rec in enumerate(records):
        keys = rec.get("dynamodb", {}).get("Keys") if isinstance(rec, dict) else None
        if not isinstance(keys, dict) or not keys or not all(
                isinstance(v, dict) and len(v) == 1 for v in keys.values()):
            raise NotAnInvocationRecord(f"payload record {n} has no dynamodb.Keys")
    return records


# --------------------------------------------------------------------------- messages


@dataclass
class Message:
    """One on-failure message: an SQS message or an S3 object."""

    source: str  # "sqs" | "s3"
    ident: str  # the SQS MessageId, or the S3 key
    handle: str  # the SQS receipt handle, or the S3 key
    sent_at: float | None = None  # SQS SentTimestamp / S3 LastModified (epoch seconds)
    receive_count: int | None = None  # SQS ApproximateReceiveCount
    record: InvocationRecord | None = None
    error: str | None = None  # why it is not an invocation record

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "id": self.ident, "sent_at": self.sent_at,
                "receive_count": self.receive_count,
                "record": None if self.record is None else self.record.to_json(),
                "error": self.error}


def _message(source: str, ident: str, handle: str, body: str | bytes,
             sent_at: float | None, receive_count: int | None = None) -> Message:
    msg = Message(source, ident, handle, sent_at, receive_count)
    try:
        msg.record = parse_record(body)
    except NotAnInvocationRecord as exc:
        msg.error = str(exc)
    return msg


class SqsQueue:
    """Reads on-failure messages from an SQS queue and holds them (visibility timeout,
    renewed by :meth:`lease` while a run lasts) until they are deleted or released."""

    kind = "sqs"

    def __init__(self, aws: Aws, url: str, *, visibility: int = DEFAULT_VISIBILITY) -> None:
        self.aws, self.url = aws, url
        self.visibility = max(1, min(visibility, SQS_MAX_VISIBILITY))
        self.client = aws.client("sqs")
        self._held: dict[str, Message] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return self.url

    def redrive_policy(self) -> dict[str, Any] | None:
        """The queue's own dead-letter redrive policy (maxReceiveCount, target), if any."""
        with aws_errors():
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        try:
            policy = json.loads(attrs.get("RedrivePolicy") or "null")
        except ValueError:
            return None
        return policy if isinstance(policy, dict) else None

    def read(self, max_messages: int, *, wait_seconds: int = 1) -> list[Message]:
        """Receive up to ``max_messages`` messages (each hidden from other readers for
        the visibility timeout). Stops at the first empty long poll (``wait_seconds``
        >= 1 asks every SQS server, so an empty answer means an empty queue, not a
        sampled miss: SQS Developer Guide, "sqs-short-and-long-polling")."""
        out: dict[str, Message] = {}
        while len(out) < max_messages:
            with aws_errors():
                resp = self.client.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=min(10, max_messages - len(out)),
                    WaitTimeSeconds=wait_seconds, VisibilityTimeout=self.visibility,
                    MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"])
            got = resp.get("Messages") or []
            if not got:
                break
            for m in got:
                attrs = m.get("Attributes") or {}
                sent = str(attrs.get("SentTimestamp") or "")
                count = str(attrs.get("ApproximateReceiveCount") or "")
                msg = _message("sqs", str(m["MessageId"]), str(m["ReceiptHandle"]),
                               str(m.get("Body", "")),
                               int(sent) / 1000 if sent.isdigit() else None,
                               int(count) if count.isdigit() else None)
                out[msg.ident] = msg  # a duplicate delivery: keep the newest handle
                with self._lock:
                    self._held[msg.ident] = msg
        return list(out.values())

    def renew(self) -> None:
        """Extend the visibility timeout of every held message (from now)."""
        with self._lock:
            held = list(self._held.values())
        for chunk in _chunks(held, 10):
            with aws_errors():
                self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle,
                     "VisibilityTimeout": self.visibility} for i, m in enumerate(chunk)])

    def lease(self) -> Lease:
        """A context manager that renews the held messages' visibility every third of
        the timeout while the caller works on them."""
        return Lease(self)

    def settle(self, messages: Sequence[Message], *, delete: bool = True
               ) -> dict[str, str | None]:
        """Delete fully handled messages; ident -> None (done) or the error."""
        out: dict[str, str | None] = {}
        for chunk in _chunks(list(messages), 10):
            with aws_errors():
                resp = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(chunk)])
            for ok in resp.get("Successful") or []:
                out[chunk[int(ok["Id"])].ident] = None
            for bad in resp.get("Failed") or []:
                out[chunk[int(bad["Id"])].ident] = (f"{bad.get('Code')}: "
                                                    f"{bad.get('Message', '')}").strip()
        with self._lock:
            for ident, error in out.items():
                if error is None:
                    self._held.pop(ident, None)
        return out

    def release(self) -> None:
        """Make every message still held visible again at once (left in place)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for chunk in _chunks(held, 10):
            try:
                with aws_errors():
                    self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": 0}
                        for i, m in enumerate(chunk)])
            except AwsError:
                pass  # they become visible when their timeout ends anyway


class Lease:
    def __init__(self, queue: SqsQueue) -> None:
        self.queue = queue
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sqs-lease", daemon=True)
        self.error: str | None = None

    def _run(self) -> None:
        interval = max(self.queue.visibility / 3, 0.5)
        while not self.stop.wait(interval):
            try:
                self.queue.renew()
            except AwsError as exc:  # next time; the messages reappear at worst
                self.error = exc.message

    def __enter__(self) -> Lease:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


class S3Bucket:
    """Reads on-failure records from an S3 bucket under ``prefix``; a record it has
    fully handled gets the tag ``streamq-redrive=done`` (or is deleted) and is not read
    again."""

    kind = "s3"

    def __init__(self, aws: Aws, bucket: str, prefix: str = S3_PREFIX) -> None:
        self.aws, self.bucket, self.prefix = aws, bucket, prefix
        self.client = aws.client("s3")
        self.done_before = 0  # records skipped because an earlier run marked them done

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def redrive_policy(self) -> dict[str, Any] | None:
        return None

    def _objects(self) -> Iterable[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            with aws_errors():
                page = self.client.list_objects_v2(**kwargs)
            yield from page.get("Contents") or []
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def _is_done(self, key: str) -> bool:
        with aws_errors():
            tags = self.client.get_object_tagging(Bucket=self.bucket, Key=key).get(
                "TagSet") or []
        return any(t.get("Key") == DONE_TAG for t in tags)

    def read(self, max_messages: int, *, wait_seconds: int = 0) -> list[Message]:
        """Up to ``max_messages`` records not marked done, oldest first."""
        del wait_seconds
        objects = sorted((o for o in self._objects() if not str(o["Key"]).endswith("/")),
                         key=lambda o: (o.get("LastModified") or 0, o["Key"]))
        out: list[Message] = []
        for obj in objects:
            if len(out) >= max_messages:
                break
            key = str(obj["Key"])
            if self._is_done(key):
                self.done_before += 1
                continue
            with aws_errors():
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            modified: Any = obj.get("LastModified")
            out.append(_message("s3", key, key, body,
                                modified.timestamp() if modified is not None
                                and hasattr(modified, "timestamp") else None))
        return out

    def lease(self) -> _NoLease:
        return _NoLease()

    def settle(self, messages: Sequence[Message], *, delete: bool = False
               ) -> dict[str, str | None]:
        """Tag (or with ``delete``, delete) fully handled records; key -> None or error."""
        out: dict[str, str | None] = {}
        for m in messages:
            try:
                with aws_errors():
                    if delete:
                        self.client.delete_object(Bucket=self.bucket, Key=m.handle)
                    else:
                        tags = [t for t in self.client.get_object_tagging(
                            Bucket=self.bucket, Key=m.handle).get("TagSet") or []
                                if t.get("Key") != DONE_TAG]
                        tags.append({"Key": DONE_TAG, "Value": DONE_VALUE})
                        self.client.put_object_tagging(Bucket=self.bucket, Key=m.handle,
                                                       Tagging={"TagSet": tags})
                out[m.ident] = None
            except AwsError as exc:
                out[m.ident] = exc.message
        return out

    def release(self) -> None:
        pass  # an S3 object is never hidden


class _NoLease:
    error: str | None = None

    def __enter__(self) -> _NoLease:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _chunks(items: list[Message], size: int) -> Iterable[list[Message]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------- where


@dataclass
class Destination:
    """Where to read: an SQS queue (``url``) or an S3 bucket (``bucket``, ``prefix``)."""

    kind: str  # "sqs" | "s3"
    url: str | None = None
    bucket: str | None = None
    prefix: str = S3_PREFIX
    arn: str | None = None  # the trigger's DestinationConfig, when found from it
    notes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        if self.kind == "sqs":
            return self.url or self.arn or ""
        return f"s3://{self.bucket}/{self.prefix}"


def queue_url_of(aws: Aws, queue: str) -> str:
    """A queue URL as given, or the URL of a queue ARN (``arn:aws:sqs:REGION:ACCOUNT:NAME``)."""
    if queue.startswith("arn:"):
        parts = queue.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise BadInput(f"--queue {queue!r}: not a queue URL or SQS queue ARN")
        with aws_errors():
            return str(aws.client("sqs").get_queue_url(
                QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
    parsed = urlparse(queue)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path in ("", "/"):
        raise BadInput(f"--queue {queue!r}: not a queue URL (https://sqs.REGION.amazonaws.com"
                       "/ACCOUNT/NAME) or SQS queue ARN")
    return queue


def bucket_name_of(bucket: str) -> str:
    """``NAME``, ``s3://NAME`` or ``arn:aws:s3:::NAME`` -> ``NAME``."""
    name = bucket
    if name.startswith("s3://"):
        name = name[5:].rstrip("/")
    elif name.startswith("arn:"):
        parts = name.split(":")
        if len(parts) != 6 or parts[2] != "s3" or "/" in parts[5]:
            raise BadInput(f"--bucket {bucket!r}: not a bucket name or S3 bucket ARN")
        name = parts[5]
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name):
        raise BadInput(f"--bucket {bucket!r}: not a valid S3 bucket name")
    return name


def from_trigger(mapping: dict[str, Any]) -> Destination:
    """The trigger's own on-failure destination (``DestinationConfig.OnFailure``)."""
    arn = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if not arn:
        raise NotFound("the trigger has no on-failure destination, so there is nothing to "
                       "redrive from (set one with `streamq config-trigger --on-failure ARN`,"
                       " or pass --queue URL / --bucket NAME)")
    arn = str(arn)
    parts = arn.split(":")
    service = parts[2] if len(parts) >= 6 else ""
    if service == "sqs":
        return Destination("sqs", arn=arn)  # the URL is looked up by open_destination
    if service == "s3":
        uuid = str(mapping.get("UUID") or "")
        return Destination("s3", bucket=parts[5], arn=arn,
                           prefix=f"{S3_PREFIX}{uuid}/" if uuid else S3_PREFIX)
    if service == "sns":
        raise BadInput(f"the trigger's on-failure destination is the SNS topic {arn}: an SNS "
                       "message cannot be read back: subscribe an SQS queue to the topic "
                       "and pass --queue URL")
    raise BadInput(f"the trigger's on-failure destination {arn} is not an SQS queue or an "
                   "S3 bucket")


def open_destination(aws: Aws, dest: Destination, *, visibility: int = DEFAULT_VISIBILITY
                     ) -> SqsQueue | S3Bucket:
    if dest.kind == "sqs":
        if dest.url is None:
            assert dest.arn is not None
            dest.url = queue_url_of(aws, dest.arn)
        return SqsQueue(aws, dest.url, visibility=visibility)
    assert dest.bucket is not None
    return S3Bucket(aws, dest.bucket, dest.prefix)
