"""moto's server on loopback, patched so it behaves like AWS for a stream trigger.

Where moto and AWS differ in ways streamq depends on, :func:`patch_moto` makes moto
behave like AWS:

* moto 5.x, when an event source mapping exists on a table's stream, invokes the
  Lambda on every write (through Docker, absent here) and then empties the
  stream. Real DynamoDB leaves the stream alone and the trigger reads it. The
  patch turns that off, so the stream keeps its records for our own readers (the
  sandbox poller, the tests).
* moto writes a MODIFY stream record for a PutItem or UpdateItem that changes
  nothing. DynamoDB does not: "If you perform a PutItem or UpdateItem operation that
  does not change any data in an item, DynamoDB Streams does not write a stream
  record for that operation" (DynamoDB Developer Guide, "Change data capture for
  DynamoDB Streams", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
  Streams.html). The patch drops such records.
* A trigger's filter encrypted with a customer KMS key (``KMSKeyArn``): moto returns it in
  plain text everywhere. AWS returns ``FilterCriteria`` as null from
  ListEventSourceMappings, and in plain text from GetEventSourceMapping only when it can
  be decrypted (botocore's lambda model, ``EventSourceMappingConfiguration``:
  ``FilterCriteria`` "shows up as null in the response of ListEventSourceMapping API
  calls. You can view this field in plaintext in the response of GetEventSourceMapping
  and DeleteEventSourceMapping calls if you have kms:Decrypt permissions";
  ``FilterCriteriaError``: "details about an error related to filter criteria
  encryption", ``ErrorCode`` "The KMS exception that resulted from filter criteria
  encryption or decryption"). The patch hides the filter from List, and from the other
  calls when the key cannot be used (moto's KMS has no such key, or it is disabled or
  pending deletion: disable the key to see the state a caller without kms:Decrypt
  sees), answering ``FilterCriteriaError`` instead.
* A trigger created for an alias (``FunctionName`` ``alfn:prod``): moto records the ARN of
  the version the alias points to (``...:function:alfn:1``). AWS keeps the alias ARN
  (``...:function:alfn:prod``): a mapping on an alias follows the alias (Lambda DG,
  "Using Lambda aliases in event sources and permissions policies", using-aliases.html:
  "If you specify a Lambda function alias in the mapping configuration, you don't need
  to update the mapping when the function version changes"). The patch keeps the alias
  in the mapping's FunctionArn, as AWS does.
* GetShardIterator for a shard the stream does not have, or a sequence number before the
  shard's first record: moto fails an assert (an internal error); DynamoDB Streams
  answers ResourceNotFoundException / TrimmedDataAccessException, which the patch does.

* GetShardIterator with ``ShardIteratorType`` ``AT_TIMESTAMP`` and a ``Timestamp``
  (botocore's dynamodbstreams model: "Start reading from the position denoted by a
  specific timestamp"): moto fails with an internal error. The patch starts the iterator
  at the shard's first record created at or after the timestamp (``streamq tail --from
  TIME``).

Run as ``python -m streamq.sandbox.server [--port N]``: prints ``PORT <n>`` on
stdout once it listens (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any


def patch_moto() -> None:
    """Apply every patch (idempotent)."""
    _patch_no_invoke()
    _patch_noop_writes()
    _patch_encrypted_filters()
    _patch_alias_mappings()
    _patch_atomic_writes()
    _patch_at_timestamp()
    _patch_streams()


def _patched(func: Any) -> bool:
    return bool(getattr(func, "_streamq_patched", False))


def _patch_no_invoke() -> None:
    import moto.awslambda.models as lm

    def _no_invoke(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    lm.LambdaBackend.send_dynamodb_items = _no_invoke  # type: ignore[method-assign,assignment]


def _patch_noop_writes() -> None:
    import moto.dynamodb.models.table as dt

    if not _patched(dt.StreamShard.add):
        record = dt.StreamShard.add

        def _add_if_changed(self: Any, old: Any, new: Any) -> None:
            # A write that leaves the item exactly as it was writes no stream record
            # (DynamoDB compares values: the number 1 and 1.0 are the same value).
            if old is not None and new is not None and old == new:
                return None
            return record(self, old, new)

        _add_if_changed._streamq_patched = True  # type: ignore[attr-defined]
        dt.StreamShard.add = _add_if_changed  # type: ignore[method-assign]


def _patch_atomic_writes() -> None:
    """One DynamoDB write at a time. moto's server handles requests in threads and its
    writes check a condition, then apply the change, with nothing in between held: two
    conditional UpdateItems on one item could both pass. DynamoDB's writes are atomic
    ("Individual write operations such as UpdateItem are atomic and always operate on the
    most recent version of the item, regardless of concurrency": DynamoDB Developer Guide,
    "Best practices for handling concurrent updates"), which is what makes a conditional
    write an optimistic lock; ``refire --only-if due`` relies on it."""
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        method = getattr(DynamoDBBackend, name)
        if _patched(method):
            continue

        def serialized(self: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(self, *args, **kwargs)

        serialized._streamq_patched = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, serialized)


def _patch_at_timestamp() -> None:
    import calendar

    from moto.core.responses import ActionResult
    from moto.dynamodbstreams import models as sm
    from moto.dynamodbstreams import responses as sr

    original = sr.DynamoDBStreamsHandler.get_shard_iterator
    if _patched(original):
        return

    def get_shard_iterator(self: Any) -> Any:
        if self._get_param("ShardIteratorType") != "AT_TIMESTAMP":
            return original(self)
        at = float(self._get_param("Timestamp") or 0)
        table = self.backend._get_table_from_arn(self._get_param("StreamArn"))
        shard = table.stream_shard
        seq = shard.starting_sequence_number + len(shard.items)
        for index, rec in enumerate(shard.items):
            created = rec.record["dynamodb"]["ApproximateCreationDateTime"]
            # moto stamps records with a naive UTC datetime
            when = (calendar.timegm(created.utctimetuple()) + created.microsecond / 1e6
                    if hasattr(created, "utctimetuple") else float(created))
            if when >= at:
                seq = shard.starting_sequence_number + index
                break
        iterator = sm.ShardIterator(self.backend, shard, "AT_SEQUENCE_NUMBER", seq)
        self.backend.shard_iterators[iterator.arn] = iterator
        return ActionResult({"ShardIterator": iterator.arn})

    get_shard_iterator._streamq_patched = True  # type: ignore[attr-defined]
    sr.DynamoDBStreamsHandler.get_shard_iterator = get_shard_iterator  # type: ignore[method-assign]


def kms_key_problem(key_arn: str) -> tuple[str, str] | None:
    """Why Lambda could not use ``key_arn`` to decrypt a filter in this moto, as
    (ErrorCode, Message), or None when the key is usable."""
    from moto.kms.models import kms_backends

    parts = key_arn.split(":")
    if len(parts) < 6 or parts[2] != "kms":
        return ("KMSNotFoundException", f"{key_arn} is not a KMS key ARN")
    region, account = parts[3], parts[4]
    try:
        key = kms_backends[account][region].describe_key(key_arn)
    except Exception:  # moto raises KeyError or its own NotFound for an unknown key
        return ("KMSNotFoundException",
                "Lambda couldn't decrypt the filter criteria: the KMS key was not found")
    state = getattr(key, "key_state", "Enabled")
    if state == "Disabled":
        return ("KMSDisabledException",
                "Lambda couldn't decrypt the filter criteria: the KMS key is disabled")
    if state != "Enabled":
        return ("KMSInvalidStateException",
                f"Lambda couldn't decrypt the filter criteria: the KMS key is {state}")
    return None


def _patch_encrypted_filters() -> None:
    import json

    import moto.awslambda.models as lm
    import moto.awslambda.responses as lr

    if not _patched(lm.EventSourceMapping.get_configuration):
        configuration = lm.EventSourceMapping.get_configuration

        def _get_configuration(self: Any) -> dict[str, Any]:
            cfg: dict[str, Any] = configuration(self)
            key = cfg.get("KMSKeyArn")
            if key and cfg.get("FilterCriteria"):
                problem = kms_key_problem(str(key))
                if problem is not None:
                    cfg.pop("FilterCriteria", None)
                    cfg["FilterCriteriaError"] = {"ErrorCode": problem[0],
                                                  "Message": problem[1]}
            return cfg

        _get_configuration._streamq_patched = True  # type: ignore[attr-defined]
        lm.EventSourceMapping.get_configuration = _get_configuration  # type: ignore[method-assign]

    if not _patched(lr.LambdaResponse.list_event_source_mappings):
        list_mappings = lr.LambdaResponse.list_event_source_mappings

        def _list(self: Any) -> str:
            doc = json.loads(list_mappings(self))
            for cfg in doc.get("EventSourceMappings", []):
                if cfg.get("KMSKeyArn"):
                    cfg.pop("FilterCriteria", None)  # null in List when encrypted
            return json.dumps(doc)

        _list._streamq_patched = True  # type: ignore[attr-defined]
        lr.LambdaResponse.list_event_source_mappings = _list  # type: ignore[method-assign]


def _patch_alias_mappings() -> None:
    import re

    import moto.awslambda.models as lm

    if _patched(lm.LambdaBackend.create_event_source_mapping):
        return
    create = lm.LambdaBackend.create_event_source_mapping
    qualified = re.compile(r"^(?:arn:[^:]+:lambda:[^:]+:\d{12}:function:|\d{12}:function:|"
                           r"function:)?(?P<name>[A-Za-z0-9_-]+):(?P<qualifier>[A-Za-z0-9_$-]+)$")

    def _create(self: Any, spec: dict[str, Any]) -> Any:
        name = str(spec.get("FunctionName", ""))
        esm = create(self, spec)
        m = qualified.match(name)
        if m and not m.group("qualifier").isdigit() and m.group("qualifier") != "$LATEST":
            unqualified = esm.function_arn.split(":function:")[0] + ":function:" + m.group(
                "name")
            esm.function_arn = f"{unqualified}:{m.group('qualifier')}"
        return esm

    _create._streamq_patched = True  # type: ignore[attr-defined]
    lm.LambdaBackend.create_event_source_mapping = _create  # type: ignore[method-assign]


def _patch_streams() -> None:
    """moto's GetShardIterator answers an unknown shard or a sequence number before the
    shard's first record with an internal error (a failed assert). DynamoDB Streams
    answers ResourceNotFoundException and TrimmedDataAccessException (API reference,
    GetShardIterator), which is what redrive reads as "the stream no longer holds these
    records": do the same here."""
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    original = DynamoDBStreamsBackend.get_shard_iterator
    if _patched(original):
        return

    def get_shard_iterator(self: Any, arn: str, shard_id: str, shard_iterator_type: str,
                           sequence_number: Any = None) -> Any:
        try:
            table = self._get_table_from_arn(arn)
        except Exception:
            raise JsonRESTError("ResourceNotFoundException",
                                f"Requested resource not found: Stream: {arn} not found"
                                ) from None
        shard = table.stream_shard
        if shard is None or shard.id != shard_id:
            raise JsonRESTError("ResourceNotFoundException",
                                f"Requested resource not found: Shard: {shard_id} in "
                                f"Stream: {arn} not found")
        if shard_iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            try:
                seq = int(sequence_number)
            except (TypeError, ValueError):
                raise JsonRESTError("ValidationException",
                                    "Invalid SequenceNumber") from None
            if seq < shard.starting_sequence_number:
                raise JsonRESTError(
                    "TrimmedDataAccessException",
                    "The operation attempted to read past the oldest stream record in a "
                    "shard.")
        return original(self, arn, shard_id, shard_iterator_type, sequence_number)

    get_shard_iterator._streamq_patched = True  # type: ignore[attr-defined]
    DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator  # type: ignore[method-assign]


def make_server(host: str = "127.0.0.1", port: int = 0) -> Any:
    """A threaded werkzeug server running moto's app (not started)."""
    patch_moto()
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server as _make

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    return _make(host, port, app, threaded=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the local endpoint listens on loopback only")
    server = make_server(args.host, args.port)
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
