"""remediation_lambda.py: a scheduled remediation Lambda for a streamq outbox.

Invoked every few minutes by EventBridge Scheduler (see docs/retries.md, "EventBridge
Scheduler with a remediation function"), one round per invocation, through the public
Python API (docs/api.md):

1. the failed records whose backoff has passed (``Outbox.refire(due=True)``: each write
   re-checks that the record is still due, so two overlapping rounds fire it once);
2. then, if the round's budget allows, the stuck records (no error, older than
   ``OUTBOX_STUCK_AFTER``: the trigger never ran them, e.g. a refire lost while the
   trigger was disabled), each write re-checking that the record is still stuck. A
   stuck record refired less than ``OUTBOX_STUCK_AFTER`` ago is left alone: the trigger
   may still have that refire (what ``--due`` does for a failed record's refire).

Both at most ``OUTBOX_RATE`` writes a second (each refire makes the function call the
rate-limited API again) and at most ``OUTBOX_MAX_RECORDS`` records a round; the round
stops starting writes ``OUTBOX_MARGIN_SECONDS`` before the invocation's timeout (the
records not reached stay due or stuck for the next round). It logs one JSON line and
returns the same document.

Settings come from the function's environment (the API reads no ``streamq.toml`` and no
``STREAMQ_*``): ``OUTBOX_TABLE`` (required), ``OUTBOX_RATE`` (10), ``OUTBOX_MAX_RECORDS``
(500), ``OUTBOX_REFIRE_STUCK`` (true), ``OUTBOX_STUCK_AFTER`` (5m), ``OUTBOX_BACKOFF``
and ``OUTBOX_MAX_ATTEMPTS`` (the retry policy; default base=1m,factor=2,jitter=0.2,cap=6h
and 8), ``OUTBOX_FUNCTION`` (the trigger's function, when the stream has several),
``OUTBOX_MARGIN_SECONDS`` (10).

Package it with streamq (``pip install --target package/ streamq`` then zip the folder
with this file; the handler is ``remediation_lambda.handler``). The role needs what
``refire`` and ``stats`` need: dynamodb:DescribeTable, Scan, BatchGetItem, UpdateItem;
lambda:ListEventSourceMappings, GetEventSourceMapping (``streamq iam-policy`` prints it).
Tested against the local endpoint by tests/test_examples.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from itertools import islice
from typing import Any

from streamq import Outbox

TRUE = ("1", "true", "yes", "on")

RATE = float(os.environ.get("OUTBOX_RATE", "10"))
MAX_RECORDS = int(os.environ.get("OUTBOX_MAX_RECORDS", "500"))
REFIRE_STUCK = os.environ.get("OUTBOX_REFIRE_STUCK", "true").lower() in TRUE
STUCK_AFTER = os.environ.get("OUTBOX_STUCK_AFTER", "5m")
MARGIN_SECONDS = float(os.environ.get("OUTBOX_MARGIN_SECONDS", "10"))

# Made once per execution environment (a warm start reuses it and its clients).
outbox = Outbox(os.environ["OUTBOX_TABLE"],
                function=os.environ.get("OUTBOX_FUNCTION") or None,
                stuck_after=STUCK_AFTER,
                backoff=os.environ.get("OUTBOX_BACKOFF") or None,  # None: the default
                max_attempts=int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "8")))


def _stop_before_timeout(context: Any) -> tuple[threading.Event, threading.Timer | None]:
    """An event set MARGIN_SECONDS before the invocation times out: a refire stops
    starting writes when it is set (the writes in flight finish)."""
    stop = threading.Event()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:  # called by hand, without a Lambda context
        return stop, None
    delay = remaining() / 1000 - MARGIN_SECONDS
    if delay <= 0:  # too late already: start no write
        stop.set()
        return stop, None
    timer = threading.Timer(delay, stop.set)
    timer.daemon = True
    timer.start()
    return stop, timer


def _refired_recently(record: Any, now: float) -> bool:
    """Refired less than stuck-after ago (its ``refired_at``, ISO-8601 UTC as streamq
    writes it): the trigger may not have processed that refire yet."""
    stamp = record.item.get("refired_at")
    if not isinstance(stamp, str):
        return False
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return now - at < outbox.settings.stuck_after


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One round. ``event`` is EventBridge Scheduler's input (unused: the schedule
    carries no settings)."""
    stop, timer = _stop_before_timeout(context)
    try:
        due = outbox.refire(due=True, rate=RATE, limit=MAX_RECORDS, stop=stop)
        left = MAX_RECORDS - due.total - due.not_reached
        stuck = None
        if REFIRE_STUCK and left > 0 and not stop.is_set() and due.fatal is None:
            now = time.time()
            with outbox.records(status="stuck") as records:  # read until `left` found
                candidates = list(islice(
                    (r for r in records if not _refired_recently(r, now)), left))
            if candidates:
                # Records carry the status they were selected with: each write
                # re-checks "still stuck" (no error, same created time).
                stuck = outbox.refire(candidates, rate=RATE, stop=stop)
    finally:
        if timer is not None:
            timer.cancel()
    retry = outbox.stats().to_json()["retry"]  # what is left: waiting, dead, next due
    doc = {
        "table": outbox.table,
        "refired": due.refired + (stuck.refired if stuck else 0),
        "due": due.to_json(),
        "stuck": None if stuck is None else stuck.to_json(),
        "stopped_early": stop.is_set(),
        "waiting": retry["waiting"],
        "dead": retry["dead"],
        "next_due_at": retry["next_due_at"],
    }
    print(json.dumps(doc))  # one line per round in CloudWatch Logs
    fatal = due.fatal or (stuck.fatal if stuck else None)
    if fatal:  # an error every write would hit: let the invocation fail
        raise RuntimeError(fatal)
    return doc
