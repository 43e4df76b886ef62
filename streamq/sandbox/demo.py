"""The sandbox's demo Lambda handler: the mail sender.

For each INSERT or MODIFY record of the outbox stream:

* already in the history table -> not sent again, the outbox item is deleted
  (an idempotency guard: a retried batch never sends a message twice);
* sent by the fake mail API -> a history item is written, the outbox item deleted;
* refused (429 rate limited, 550 undeliverable) -> the outbox item gets
  ``SET last_error, last_attempt_at, attempts = attempts + 1 REMOVE refired_at``,
  conditioned on the item still existing (never resurrects a deleted item).

Removing ``refired_at`` is what keeps the handler from triggering itself: the trigger's
filter passes a MODIFY only when its NewImage has ``refired_at`` (see docs/sandbox.md).

Per-record failures never fail the invocation (a raised error makes the trigger retry the
whole batch). A record without a ``recipient`` is a bug the handler does not expect: it
raises, which is how the sandbox shows a poison record (retries, bisect, on-failure
destination).

Configuration comes from the environment, as a Lambda function's does:
``MAIL_OUTBOX_TABLE``, ``MAIL_HISTORY_TABLE``, ``FAKE_MAIL_LOG``, ``FAKE_MAIL_RATE``,
``FAKE_MAIL_UNDELIVERABLE``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..aws import Aws
from ..config import Settings
from .fakeapi import DEFAULT_RATE, DEFAULT_UNDELIVERABLE, SendError, shared_api

log = logging.getLogger("streamq.sandbox.handler")

ERROR_ATTR = "last_error"
ATTEMPTS_ATTR = "attempts"
REFIRED_ATTR = "refired_at"

_aws: dict[str, Aws] = {}
_aws_lock = threading.Lock()


def _client(endpoint: str | None, region: str) -> Any:
    key = f"{endpoint}|{region}"
    with _aws_lock:
        if key not in _aws:
            _aws[key] = Aws(Settings(endpoint_url=endpoint, region=region, sandbox=True),
                            max_pool_connections=4)
        return _aws[key].client("dynamodb")


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def _now_iso_ms() -> str:
    """The attempt time, to the millisecond: the retry policy's backoff counts from it
    (streamq.retry), and a whole second would make a record due up to 1 s early."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    env = os.environ
    outbox = env.get("MAIL_OUTBOX_TABLE", "mail_outbox")
    history = env.get("MAIL_HISTORY_TABLE", "mail_history")
    api = shared_api(Path(env.get("FAKE_MAIL_LOG", "fake-mail-api.jsonl")),
                     rate=float(env.get("FAKE_MAIL_RATE", DEFAULT_RATE)),
                     undeliverable=env.get("FAKE_MAIL_UNDELIVERABLE", DEFAULT_UNDELIVERABLE))
    ddb = _client(env.get("AWS_ENDPOINT_URL"), env.get("AWS_REGION", "us-east-1"))
    sent = failed = skipped = 0
    for record in event.get("Records", []):
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        body = record["dynamodb"]
        keys = body["Keys"]
        image = body.get("NewImage") or {}
        message_id = next(iter(keys.values()))["S"]
        recipient = image["recipient"]["S"]  # KeyError: the poison record
        subject = image.get("subject", {}).get("S", "")
        done = ddb.get_item(TableName=history, Key={"id": {"S": message_id}},
                            ConsistentRead=True).get("Item")
        if done:
            ddb.delete_item(TableName=outbox, Key=keys)
            log.info("handler: %s already delivered, not sent again", message_id)
            skipped += 1
            continue
        try:
            provider_id = api.send(message_id, recipient, subject)
        except SendError as exc:
            _record_failure(ddb, outbox, keys, str(exc))
            log.info("handler: %s to %s failed: %s", message_id, recipient, exc)
            failed += 1
            continue
        attempts = int(image.get(ATTEMPTS_ATTR, {}).get("N", "0")) + 1
        ddb.put_item(TableName=history, Item={
            "id": {"S": message_id}, "recipient": {"S": recipient}, "subject": {"S": subject},
            "sent_at": {"S": _now_iso()}, "provider_id": {"S": provider_id},
            "attempts": {"N": str(attempts)}})
        ddb.delete_item(TableName=outbox, Key=keys)
        sent += 1
    log.info("handler: batch of %d: %d sent, %d failed, %d already delivered",
             len(event.get("Records", [])), sent, failed, skipped)
    return {"batchItemFailures": []}


def _record_failure(ddb: Any, table: str, keys: dict[str, Any], error: str) -> None:
    first = next(iter(keys))
    try:
        ddb.update_item(
            TableName=table, Key=keys,
            UpdateExpression="SET #e = :e, #t = :t, #a = if_not_exists(#a, :zero) + :one "
                             "REMOVE #r",
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#e": ERROR_ATTR, "#t": "last_attempt_at",
                                      "#a": ATTEMPTS_ATTR, "#r": REFIRED_ATTR, "#k": first},
            ExpressionAttributeValues={":e": {"S": error}, ":t": {"S": _now_iso_ms()},
                                       ":zero": {"N": "0"}, ":one": {"N": "1"}})
    except Exception as exc:
        if "ConditionalCheckFailed" not in type(exc).__name__ + str(exc):
            raise
        log.info("handler: %s is gone from the outbox; failure not recorded",
                 next(iter(keys.values())))
