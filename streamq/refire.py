"""The refire engine: plan, pre-flight, conditional touch, rate limit, concurrency, journal.

A refire is one conditional UpdateItem per record::

    SET #touch = :now, #run = :run  ADD #count :one
    IF attribute_exists(<hash key>) AND (attribute_not_exists(#run) OR #run <> :run)
       [AND <still failed> | <still stuck>]

* ``attribute_exists`` on the hash key: UpdateItem on a missing key would *create*
  the item (an INSERT: a delivered record resurrected). The condition makes it fail.
* The run token: a request retried after its response was lost cannot fire a record
  twice in one run; ``--resume`` reuses the token, so neither can a resumed run.
* The counter and the timestamp always change the item, so the write always produces
  a MODIFY stream record (a write that changes nothing produces none).
* ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` tells why a condition failed in the
  same round trip: no item -> ``missing``; our run token -> ``refired`` (earlier in
  this run); otherwise -> ``skipped`` (the record is no longer failed / stuck).

Every id ends in exactly one outcome: refired, missing, skipped, failed, or unknown (an
attempt's answer was lost and the retry found the item deleted: see Toucher.touch).

The whole run, as the CLI drives it::

    mode = check_selection(ids=True, filters=False)      # flag combinations (exit 2)
    plan = prepare(Aws(settings), settings, ids=["msg-1"])  # targets, pre-flight, plan
    if (refusal := plan.refusal()) is not None:
        raise refusal                                     # pre-flight refuses (exit 5)
    summary = run(plan, writer_aws(settings, plan.concurrency), stop=threading.Event())
    if (error := plan.outcome_error(summary)) is not None:
        raise error                                       # exit 1, 3 or 130

Nothing here touches signals, terminals or stdout: it runs from any thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import hints, runlock
from . import journal as jfile
from .aws import Aws, aws_errors, error_code, is_throttle
from .config import Settings
from .errors import (
    AwsError,
    BadInput,
    Interrupted,
    NotFound,
    PartialFailure,
    Refused,
    StreamqError,
)
from .journal import JournalFile
from .outbox import (
    AV,
    Classifier,
    Item,
    Record,
    Selection,
    TableInfo,
    describe_table,
    iso,
    iter_key_lines,
    key_id,
    key_of,
    key_plain,
    key_text,
    parse_key_object,
    parse_key_text,
    select,
)
from .retry import describe as describe_policy
from .waits import RECORD_DEADLINE

#: ``unknown``: an attempt's answer was lost, and the retry found the item deleted (it
#: may have been refired before that): see Toucher.touch.
OUTCOMES = ("refired", "missing", "skipped", "failed", "unknown")
DONE = frozenset({"refired", "missing", "skipped", "unknown"})  # never retried by --resume
ONLY_IF = ("failed", "stuck", "due", "dead", "selected", "any")
#: conditions that re-check attribute values as read (see Target.snapshot)
SNAPSHOT_CONDS = ("due", "dead")

#: Default --rate: each refire makes the Lambda call the downstream API once more, and
#: the API's rate limit is usually what failed the records in the first place.
DEFAULT_RATE = 10.0
DEFAULT_CONCURRENCY = 16
MAX_ATTEMPTS = 8
JOURNAL_FORMAT = jfile.FORMAT


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One record to refire, with the condition that must still hold when it is touched.

    ``cond``: None (exists only), ``failed`` (error present and non-empty) or ``stuck``
    (no error, and the created attribute still equals ``created`` as read at selection:
    an item's creation time never changes and its age only grows, so a record that
    was stuck when read is still stuck, whatever the format of the time).

    ``due`` and ``dead`` (the retry policy, streamq.retry): failed, and the attributes
    in ``snapshot`` still hold the values read at selection (absent ones still absent).
    For ``due`` those are the attempts, the last attempt, the refire timestamp and the
    refire counter: with them unchanged the record's next due time is unchanged, and the
    time only grows, so a record that was due when read is still due; and a refire by
    anyone else (a second scheduler) changes the counter, so only one of them fires it.
    For ``dead``: the attempts (at or over max_attempts, unchanged: still dead).
    """

    key: Item
    cond: str | None = None
    created: AV | None = None
    item: Item | None = None  # as read before the run (filter evaluation, stuck check)
    read: bool = False  # ``item`` is the result of a read (None then means: absent)
    snapshot: dict[str, AV | None] | None = None  # due/dead: attribute -> value as read


def snapshot_attrs(cond: str | None, settings: Settings) -> tuple[str, ...]:
    """The attributes a ``due``/``dead`` condition requires unchanged (see Target)."""
    if cond == "due":
        return tuple(dict.fromkeys((settings.attempts_attr, settings.last_attempt_attr,
                                    settings.refired_attr, settings.refire_count_attr)))
    if cond == "dead":
        return (settings.attempts_attr,)
    return ()


def capture(t: Target, settings: Settings) -> None:
    """Record what the target's condition compares against, from ``t.item`` as read."""
    if t.item is None:
        return
    if t.cond == "stuck":
        t.created = t.item.get(settings.created_attr)
    elif t.cond in SNAPSHOT_CONDS:
        t.snapshot = {a: t.item.get(a) for a in snapshot_attrs(t.cond, settings)}


@dataclass
class Result:
    key: Item
    outcome: str
    error: str | None = None

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        return {"key": key_plain(self.key, info), "outcome": self.outcome, "error": self.error}


def dedupe(keys: Iterable[Item]) -> tuple[list[Item], int]:
    """Keys in first-seen order, each once; and how many duplicates were dropped."""
    seen: set[str] = set()
    out: list[Item] = []
    dups = 0
    for key in keys:
        ident = key_id(key)
        if ident in seen:
            dups += 1
            continue
        seen.add(ident)
        out.append(key)
    return out, dups


def new_run_token() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"r-{stamp}-{secrets.token_hex(4)}"


def read_items(aws: Aws, info: TableInfo, keys: Sequence[Item], *,
               stop: threading.Event | None = None) -> dict[str, Item]:
    """Strongly consistent BatchGetItem (100 keys a call); key_id -> item, absent ones left out."""
    client = aws.client("dynamodb")
    out: dict[str, Item] = {}
    for start in range(0, len(keys), 100):
        if stop is not None and stop.is_set():
            break
        request: dict[str, Any] = {info.name: {"Keys": list(keys[start:start + 100]),
                                               "ConsistentRead": True}}
        delay = 0.05
        while request:
            with aws_errors():
                resp = client.batch_get_item(RequestItems=request)
            for item in resp.get("Responses", {}).get(info.name, []):
                out[key_id(key_of(item, info))] = item
            request = resp.get("UnprocessedKeys") or {}
            if request:
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
    return out


def targets_for_keys(keys: Sequence[Item], only_if: str, items: dict[str, Item] | None,
                     classifier: Classifier) -> list[Target]:
    """Targets for ids given by the user. ``items`` (when read) feed filter checks and
    ``--only-if stuck``, which needs the created time as read."""
    out = []
    for key in keys:
        item = None if items is None else items.get(key_id(key))
        t = Target(key=key, item=item, read=items is not None)
        if only_if in ("failed", "stuck", *SNAPSHOT_CONDS):
            t.cond = only_if
            capture(t, classifier.s)
        out.append(t)
    return out


def targets_for_records(records: Iterable[Any], only_if: str, settings: Settings,
                        info: TableInfo, statuses: Iterable[str] = ()) -> list[Target]:
    """Targets from ``outbox.select`` records. ``selected``: each record must still have
    the status it was selected with (failed stays failed, stuck stays stuck); selected by
    its retry state alone (``statuses``: e.g. only ``due``), it must still be due (dead:
    still dead; waiting: still failed)."""
    wanted = set(statuses)
    out = []
    for rec in records:
        cond: str | None
        if only_if == "selected":
            cond = rec.status if rec.status in ("failed", "stuck") else None
            if rec.status not in wanted and rec.retry is not None and rec.retry in wanted:
                cond = rec.retry if rec.retry in SNAPSHOT_CONDS else "failed"
        else:
            cond = None if only_if == "any" else only_if
        t = Target(key=rec.key, cond=cond, item=rec.item, read=True,
                   created=rec.item.get(settings.created_attr))
        capture(t, settings)
        out.append(t)
    return out


def presettle(targets: list[Target], classifier: Classifier, run: str | None = None
              ) -> tuple[list[Target], list[Result]]:
    """Outcomes known without a write: ``--only-if stuck`` on a record that was absent or
    not stuck when read is settled now (no condition could make it true later)."""
    todo: list[Target] = []
    settled: list[Result] = []
    for t in targets:
        if t.cond in ("stuck", *SNAPSHOT_CONDS) and t.read:
            if t.item is None:
                settled.append(Result(t.key, "missing"))
                continue
            if run is not None and t.item.get(classifier.s.refire_run_attr) == {"S": run}:
                # --resume: fired by this run already (its outcome was not journaled), and
                # that refire made it look "not due" now.
                settled.append(Result(t.key, "refired"))
                continue
            rec = classifier.classify(t.item)
            if t.cond == "stuck" and rec.status != "stuck":
                settled.append(Result(t.key, "skipped", f"not stuck (status {rec.status})"))
                continue
            if t.cond in SNAPSHOT_CONDS and rec.retry != t.cond:
                settled.append(Result(t.key, "skipped", f"not {t.cond} ({_state(rec)})"))
                continue
        todo.append(t)
    return todo, settled


def _state(rec: Any) -> str:
    """A record's status for a skip reason: ``waiting until …``, ``dead``, ``stuck``."""
    if rec.retry == "waiting" and rec.next_due_at is not None:
        return f"waiting until {iso(rec.next_due_at)}"
    return str(rec.retry or f"status {rec.status}")


# --------------------------------------------------------------------------- pre-flight


@dataclass
class Preflight:
    stream_enabled: bool
    trigger: dict[str, Any] | None = None
    trigger_error: str | None = None
    function: str | None = None
    state: str | None = None
    patterns: list[str] = field(default_factory=list)
    dropped: list[tuple[Item, list[tuple[str, str]]]] = field(default_factory=list)
    filter_error: str | None = None
    checked: int = 0  # records the filter was evaluated on (0: a placeholder record)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # refusals (unless --force)

    @property
    def verdict(self) -> str:
        if self.trigger is None:
            return "unknown (no trigger)"
        if self.filter_error:
            return f"cannot evaluate: {self.filter_error}"
        if not self.patterns:
            return "passes (no FilterCriteria)"
        if self.dropped:
            return f"DROPS {len(self.dropped)} of {max(self.checked, 1)} record(s)"
        what = f"{self.checked} record(s)" if self.checked else "a placeholder record"
        return f"passes ({len(self.patterns)} filter(s), checked on {what})"


def inspect_trigger(aws: Aws, info: TableInfo, settings: Settings, *,
                    uuid: str | None = None) -> Preflight:
    """Stream enabled, trigger found and its state. Problems refuse unless ``--force``."""
    from .trigger import filter_hidden, filter_patterns, find_trigger, function_label, get_mapping

    pf = Preflight(stream_enabled=bool(info.stream_enabled and info.stream_arn))
    if not pf.stream_enabled:
        pf.problems.append(f"table {info.name!r} has no stream enabled: a refire would "
                           "change the records and trigger nothing")
        return pf
    try:
        mapping = find_trigger(aws, info, function=settings.function, uuid=uuid)
    except NotFound as exc:
        pf.trigger_error = exc.message
        pf.problems.append(f"{exc.message}: nothing would process the refired records")
        return pf
    # ListEventSourceMappings returns an encrypted filter as null; GetEventSourceMapping
    # returns it in plain text to a caller with kms:Decrypt, or FilterCriteriaError
    # (botocore's lambda model). Read the mapping with Get, and never take a filter that
    # did not come back for "no filter".
    mapping = get_mapping(aws, str(mapping["UUID"]))
    pf.trigger = mapping
    pf.function = function_label(mapping.get("FunctionArn", "?"))
    pf.state = str(mapping.get("State", "?"))
    if pf.state != "Enabled":
        pf.warnings.append(
            f"the trigger ({pf.function}) is {pf.state}: refired records wait in the stream "
            "until it is enabled, and leave it after at most 24 h")
    pf.patterns = filter_patterns(mapping)
    hidden = filter_hidden(mapping)
    if hidden:
        pf.filter_error = f"the filter is {hidden}"
        pf.problems.append(f"cannot evaluate the trigger's filter, which may drop every "
                           f"refire: it is {hidden}")
    return pf


def check_filters(pf: Preflight, info: TableInfo, settings: Settings,
                  targets: Sequence[Target]) -> None:
    """Would the trigger's FilterCriteria pass the MODIFY a refire of each target produces?
    Evaluated on the items as read (a placeholder record when none was read)."""
    from .filters import FilterPatternError
    from .trigger import refire_verdict

    if pf.trigger is None or not pf.patterns:
        return
    checked = [t for t in targets if t.item is not None]
    try:
        if not checked:
            ok, why = refire_verdict(pf.trigger, info, settings, None)
            if not ok:
                pf.dropped.append(({}, why))
        for t in checked:
            ok, why = refire_verdict(pf.trigger, info, settings, t.item)
            if not ok:
                pf.dropped.append((t.key, why))
    except FilterPatternError as exc:
        pf.filter_error = str(exc)
        pf.problems.append(f"the trigger's FilterCriteria cannot be evaluated: {exc}")
        return
    pf.checked = len(checked)
    if pf.dropped:
        key, why = pf.dropped[0]
        pattern, reason = why[0]
        who = (f"{len(pf.dropped)} of {pf.checked} record(s), e.g. {key_text(key, info)}"
               if key else "a refire of any record")
        pf.problems.append(
            f"the trigger's FilterCriteria would drop the MODIFY record a refire produces "
            f"({who}): pattern {pattern} drops it because {reason}; records a filter drops "
            "are never retried")


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """A token bucket of depth one (GCRA): attempts are spaced 1/rate apart, shared by
    all workers and by their retries. ``rate <= 0``: unlimited."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._next = clock()
        self._lock = threading.Lock()

    def take(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False if ``stop`` is set first (no token consumed)."""
        if self.interval == 0.0:
            return not (stop is not None and stop.is_set())
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        while True:
            delay = slot - self._clock()
            if stop is not None and stop.is_set():
                return False
            if delay <= 0:
                return True
            if stop is not None:
                stop.wait(min(delay, 0.2))
            else:
                time.sleep(delay)


# --------------------------------------------------------------------------- the touch


class Toucher:
    """Builds and sends the conditional UpdateItem for one target, with retries."""

    def __init__(self, aws: Aws, info: TableInfo, settings: Settings, run: str,
                 limiter: RateLimiter, stop: threading.Event, *,
                 max_attempts: int = MAX_ATTEMPTS, base_delay: float = 0.05,
                 max_delay: float = 5.0, deadline: float = RECORD_DEADLINE) -> None:
        self.aws, self.info, self.s, self.run = aws, info, settings, run
        self.limiter, self.stop = limiter, stop
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.deadline = deadline
        self.client = aws.client("dynamodb")
        self.classifier = Classifier(settings, info)
        self.attempts = 0
        self.retries = 0
        self.fatal: str | None = None  # an error that stopped the run (credentials, table)
        self._lock = threading.Lock()

    def request(self, t: Target, now: float | None = None) -> dict[str, Any]:
        s = self.s
        names = {"#h": self.info.hash_key.name, "#t": s.refired_attr,
                 "#r": s.refire_run_attr, "#c": s.refire_count_attr}
        values: dict[str, AV] = {":now": {"S": iso_ms(time.time() if now is None else now)},
                                 ":run": {"S": self.run}, ":one": {"N": "1"}}
        cond = "attribute_exists(#h) AND (attribute_not_exists(#r) OR #r <> :run)"
        if t.cond in ("failed", "stuck", *SNAPSHOT_CONDS):
            names["#e"] = s.error_attr
            values[":empty"] = {"S": ""}
            values[":null"] = {"S": "NULL"}
        if t.cond in ("failed", *SNAPSHOT_CONDS):
            cond += " AND attribute_exists(#e) AND NOT attribute_type(#e, :null) AND #e <> :empty"
        if t.cond in SNAPSHOT_CONDS:
            # Still due (dead): the values the decision was made on are unchanged; see
            # Target. A DynamoDB condition compares the value and its type, so the value
            # as read is compared as is (attribute_not_exists where it was absent).
            snap = t.snapshot or {}
            for i, attr in enumerate(snapshot_attrs(t.cond, s)):
                names[f"#s{i}"] = attr
                if snap.get(attr) is None:
                    cond += f" AND attribute_not_exists(#s{i})"
                else:
                    values[f":s{i}"] = snap[attr]  # type: ignore[assignment]
                    cond += f" AND #s{i} = :s{i}"
        elif t.cond == "stuck":
            cond += (" AND (attribute_not_exists(#e) OR attribute_type(#e, :null) "
                     "OR #e = :empty)")
            names["#cr"] = s.created_attr
            if t.created is None:
                cond += " AND attribute_not_exists(#cr)"
            else:
                values[":created"] = t.created
                cond += " AND #cr = :created"
        return {
            "TableName": self.info.name,
            "Key": t.key,
            "UpdateExpression": "SET #t = :now, #r = :run ADD #c :one",
            "ConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def touch(self, t: Target) -> Result | None:
        """The outcome, or None if stopped before the first attempt (not reached).

        Retries throttling, 5xx and connection errors (backoff with full jitter, each
        attempt waiting for a token of the rate) until an answer, ``max_attempts``, or
        ``deadline`` seconds after the first attempt (no attempt starts after it).

        An attempt whose outcome the client cannot know (a 5xx, a reset or timeout after
        the request was sent) may have written: "When you receive a status code 500 on a
        write operation, the operation may have succeeded or failed" (DynamoDB Developer
        Guide, "Error handling with DynamoDB", HTTP 5xx). The run token makes the retry
        safe; if the retry then finds the item gone, the outcome is ``unknown`` (it may
        have been refired, then deleted), not ``missing``."""
        from botocore.exceptions import BotoCoreError, ClientError

        params = self.request(t)
        transient: tuple[type[BaseException], ...] = (*_transient(), OSError)
        last = ""
        uncertain = False  # an attempt may have written without our knowing
        first: float | None = None
        attempt = 0
        for attempt in range(self.max_attempts):
            if not self.limiter.take(self.stop):
                if attempt == 0:
                    return None
                return self._gave_up(t, f"interrupted before retry ({last})", uncertain)
            now = time.monotonic()
            if first is None:
                first = now
            elif now - first >= self.deadline:
                return self._gave_up(t, f"no answer within the {self.deadline:g}s deadline "
                                     f"({attempt} attempts): {last}", uncertain)
            with self._lock:
                self.attempts += 1
                self.retries += attempt > 0
            try:
                self.client.update_item(**params)
                return Result(t.key, "refired")
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    old = exc.response.get("Item")
                    return self._why(t, old if isinstance(old, dict) else None, uncertain)
                if error_code(exc) in FATAL_CODES:
                    # Every other write would fail the same way: stop the run, so the
                    # rest stay "not reached" (resumable), not "failed" one by one.
                    self.fatal = self.fatal or _one_line(exc)
                    self.stop.set()
                    return self._gave_up(t, _one_line(exc), uncertain)
                if not is_throttle(exc):
                    return self._gave_up(t, _one_line(exc), uncertain)
                uncertain = uncertain or _http_status(exc) >= 500
                last = _one_line(exc)
            except transient as exc:  # connection reset, timeout, ...
                uncertain = uncertain or not _never_sent(exc)
                last = _one_line(exc)
            except BotoCoreError as exc:  # e.g. credentials: not worth a retry
                self.fatal = self.fatal or _one_line(exc)
                self.stop.set()
                return self._gave_up(t, _one_line(exc), uncertain)
            if attempt + 1 < self.max_attempts:
                # Exponential backoff with full jitter; the retry also waits for a token.
                cap = min(self.max_delay, self.base_delay * (2 ** attempt))
                if self.stop.wait(random.uniform(0, cap)):
                    return self._gave_up(t, f"interrupted before retry ({last})", uncertain)
        return self._gave_up(t, f"gave up after {attempt + 1} attempts: {last}", uncertain)

    def _gave_up(self, t: Target, why: str, uncertain: bool) -> Result:
        if uncertain:
            why += ("; an earlier attempt's answer was lost, so it may have been written: "
                    "--resume settles it (never twice)")
        return Result(t.key, "failed", why)

    def _why(self, t: Target, old: Item | None, uncertain: bool = False) -> Result:
        if not old:
            if uncertain:
                return Result(t.key, "unknown", UNKNOWN_DELETED)
            return Result(t.key, "missing")
        if old.get(self.s.refire_run_attr) == {"S": self.run}:
            return Result(t.key, "refired")  # fired earlier in this run (lost response)
        rec = self.classifier.classify(old)
        status = rec.status
        if t.cond == "stuck" and status == "stuck":
            return Result(t.key, "skipped", "its created time changed since it was read")
        if t.cond in SNAPSHOT_CONDS and status == "failed":
            snap = t.snapshot or {}
            changed = [a for a in snapshot_attrs(t.cond, self.s) if old.get(a) != snap.get(a)]
            run = old.get(self.s.refire_run_attr, {}).get("S")
            by = f" (refired by run {run})" if run and self.s.refire_run_attr and (
                self.s.refire_count_attr in changed) else ""
            return Result(t.key, "skipped", f"no longer {t.cond}: {', '.join(changed)} "
                          f"changed since it was read{by}")
        return Result(t.key, "skipped", f"no longer {t.cond} (now {status})")


UNKNOWN_DELETED = ("an attempt's answer was lost and the item was gone at the retry: that "
                   "attempt may have refired it before it was deleted (e.g. delivered, then "
                   "deleted by the handler), or it was deleted first")


def _http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status if isinstance(status, int) else 0


def _never_sent(exc: BaseException) -> bool:
    """Failed before the request left: no connection was made (botocore's
    ConnectionError family: EndpointConnectionError, ConnectTimeoutError, ...). A reset
    or a read timeout after sending (HTTPClientError) may follow a write."""
    from botocore import exceptions as bx

    return isinstance(exc, bx.ConnectionError)


#: Errors no retry or other record can fix: they stop the run.
FATAL_CODES = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "ExpiredToken", "RequestExpired", "ResourceNotFoundException",
    "MissingAuthenticationTokenException",
})


def _transient() -> tuple[type[Exception], ...]:
    from botocore import exceptions as bx

    return (bx.ConnectionError, bx.HTTPClientError, bx.ReadTimeoutError,
            bx.ConnectTimeoutError, bx.EndpointConnectionError)


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# --------------------------------------------------------------------------- journal


class Journal:
    """The run's journal (see :mod:`streamq.journal` for the file): the plan, written in
    full before the first write, then one line per outcome. ``--resume`` reads it back
    (:func:`read_journal`) and appends to the same file."""

    def __init__(self, file: JournalFile) -> None:
        self.file = file

    @classmethod
    def create(cls, path: Path, *, run: str, info: TableInfo, targets: Sequence[Target],
               only_if: str, extra: dict[str, Any] | None = None) -> Journal:
        header = {"run": run, "table": info.name, "started": iso(time.time()),
                  "only_if": only_if, **(extra or {})}
        return cls(JournalFile.create(path, header, (_planned(t, info) for t in targets)))

    @classmethod
    def append(cls, path: Path | jfile.Contents) -> Journal:
        contents = path if isinstance(path, jfile.Contents) else jfile.read(path)
        return cls(JournalFile.append(contents, {"resumed": iso(time.time()),
                                                 "pid": os.getpid()}))

    def record(self, result: Result, info: TableInfo) -> None:
        doc = result.to_json(info)
        doc["at"] = iso(time.time())
        self.file.write(doc)

    def close(self) -> None:
        self.file.close()


def _planned(t: Target, info: TableInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {"planned": key_plain(t.key, info), "cond": t.cond}
    if t.cond == "stuck":
        doc["created"] = t.created
    if t.cond in SNAPSHOT_CONDS:
        doc["snapshot"] = t.snapshot or {}
    return doc


@dataclass
class ResumeState:
    run: str
    table: str
    only_if: str
    targets: list[Target]
    done: int  # targets already settled (refired / missing / skipped / unknown)
    total: int
    header: dict[str, Any] = field(default_factory=dict)
    contents: jfile.Contents | None = None  # the file as read (append() repairs its tail)


def settings_for_resume(settings: Settings, state: ResumeState, path: Path) -> Settings:
    """The settings a resumed run uses: what the journal recorded fills in what was not
    given (the table; the region and endpoint, unless the command names others or the
    environment sets AWS_ENDPOINT_URL; the refire attributes, unless given), so that
    ``streamq refire --resume FILE --yes`` reaches the same table and writes the same
    attributes (a run token under another attribute name would not protect a record).
    A given table, region or attribute that differs from the journal's is an error
    (BadInput, exit 2): the journal is that run's, not this one's."""
    import dataclasses

    head = state.header
    where = f"journal {path}"
    changes: dict[str, Any] = {}
    sources = dict(settings.sources)

    def given(name: str) -> str:
        return sources.get(name, "given")

    if not settings.table:
        changes["table"], sources["table"] = state.table, where
    elif settings.table != state.table:
        raise BadInput(f"{where} is for table {state.table!r}, not {settings.table!r} "
                       f"({given('table')}): give no table (the journal's is used), or "
                       "resume the right journal")
    region = head.get("region")
    if isinstance(region, str) and region and not settings.sandbox:
        if settings.region and settings.region != region:
            raise BadInput(f"{where} was written in region {region!r}, not "
                           f"{settings.region!r} ({given('region')})")
        if not settings.region:
            changes["region"], sources["region"] = region, where
    if head.get("sandbox") and not settings.sandbox and not hints.endpoint_of(settings):
        raise BadInput(f"{where} was written against the local sandbox: resume it with "
                       "--sandbox")
    endpoint = head.get("endpoint_url")
    if (isinstance(endpoint, str) and endpoint and not head.get("sandbox")
            and not settings.sandbox and not hints.endpoint_of(settings)):
        changes["endpoint_url"], sources["endpoint_url"] = endpoint, where
    attrs = head.get("attrs")
    for name, value in (attrs.items() if isinstance(attrs, dict) else ()):
        if name not in hints.REFIRE_ATTRS or not isinstance(value, str) or not value:
            continue
        current = getattr(settings, name)
        if current == value:
            continue
        if sources.get(name, "default") == "default":
            changes[name], sources[name] = value, where
        else:
            flag = "--" + name.replace("_", "-")
            raise BadInput(f"{where} was written with {name} {value!r}, not {current!r} "
                           f"({given(name)}): resume with {flag} {value} (or without "
                           f"{flag}); the run token only protects records under the "
                           "journal's attribute names")
    if not changes:
        return settings
    return dataclasses.replace(settings, **changes, sources=sources)


def read_journal(path: Path, info: TableInfo | None = None) -> ResumeState:
    """The run token and the targets not yet done. ``info`` types the keys (None: the
    file is checked whole, and no targets are returned)."""
    contents = jfile.read(path)
    head = contents.header
    only_if = head.get("only_if", "any")
    if only_if not in ONLY_IF:
        raise BadInput(f"journal {path}: invalid only_if {only_if!r} in its header")
    state = ResumeState(run=str(head["run"]), table=str(head.get("table")),
                        only_if=str(only_if), targets=[], done=0,
                        total=len(contents.planned), header=head, contents=contents)
    if info is None:
        return state
    if state.table != info.name:
        raise BadInput(f"journal {path} is for table {state.table!r}, not {info.name!r}")
    planned: dict[str, Target] = {}
    outcome: dict[str, str] = {}
    for doc in contents.planned:
        key = parse_key_object(doc["planned"], info)
        cond = doc.get("cond")
        if cond not in (None, "failed", "stuck", *SNAPSHOT_CONDS):
            raise BadInput(f"{path}: invalid cond {cond!r}")
        created = doc.get("created")
        if created is not None and not (isinstance(created, dict) and len(created) == 1):
            raise BadInput(f"{path}: invalid created value {created!r}")
        snapshot = doc.get("snapshot")
        if cond in SNAPSHOT_CONDS and not (isinstance(snapshot, dict) and all(
                v is None or (isinstance(v, dict) and len(v) == 1)
                for v in snapshot.values())):
            raise BadInput(f"{path}: invalid snapshot {snapshot!r}")
        planned.setdefault(key_id(key), Target(key=key, cond=cond, created=created,
                                               snapshot=snapshot))
    for doc in contents.events:
        if "outcome" in doc and "key" in doc:
            outcome[key_id(parse_key_object(doc["key"], info))] = str(doc["outcome"])
    state.total = len(planned)
    for ident, t in planned.items():
        if outcome.get(ident) in DONE:
            state.done += 1
        else:
            state.targets.append(t)
    return state


# --------------------------------------------------------------------------- the run


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    not_reached: int = 0  # includes ``abandoned``
    abandoned: int = 0  # in flight when the run stopped waiting (outcome unknown)
    elapsed: float = 0.0
    attempts: int = 0
    retries: int = 0
    interrupted: bool = False
    fatal: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return (self.counts["missing"] == 0 and self.counts["failed"] == 0
                and self.counts["unknown"] == 0 and self.not_reached == 0)

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "not_reached": self.not_reached, "abandoned": self.abandoned,
                "elapsed_seconds": round(self.elapsed, 3), "attempts": self.attempts,
                "retries": self.retries, "interrupted": self.interrupted}


class _Workers:
    """``n`` daemon threads running submitted calls, each result a Future.

    Not a ThreadPoolExecutor: its threads are joined when the interpreter exits, so a
    request stalled on the network would keep a stopped run alive until its read
    timeout. A run that stops waiting (``abandon``) leaves such threads behind and exits
    at once; their requests' outcomes are unknown, which ``--resume`` settles (the run
    token keeps any of them from firing twice)."""

    def __init__(self, n: int, name: str = "refire") -> None:
        self._q: queue.SimpleQueue[tuple[Future[Any], Callable[[Any], Any], Any] | None] = (
            queue.SimpleQueue())
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(n)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._q.put((fut, fn, arg))
        return fut

    def _work(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            fut, fn, arg = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(arg))
            except BaseException as exc:
                fut.set_exception(exc)

    def shutdown(self) -> None:
        """Let idle threads end; never waits for a busy one."""
        for _ in self._threads:
            self._q.put(None)


def execute(aws: Aws, info: TableInfo, settings: Settings, targets: Sequence[Target], *,
            run: str, rate: float, concurrency: int, stop: threading.Event,
            abandon: threading.Event | None = None, deadline: float = RECORD_DEADLINE,
            settled: Sequence[Result] = (),
            on_result: Callable[[Result], None] | None = None,
            toucher: Toucher | None = None) -> Summary:
    """Touch every target with at most ``concurrency`` requests in flight and at most
    ``rate`` attempts a second. ``on_result`` runs in the calling thread, once per
    outcome, in completion order. When ``stop`` is set: no new request starts,
    in-flight ones finish, the rest count as not reached. When ``abandon`` is set too:
    stop waiting for the requests in flight; they count as not reached (``abandoned``)."""
    if concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    abandon = abandon or threading.Event()
    summary = Summary()
    started = time.monotonic()
    tch = toucher or Toucher(aws, info, settings, run, RateLimiter(rate), stop,
                             deadline=deadline)

    def emit(result: Result) -> None:
        summary.counts[result.outcome] += 1
        if on_result is not None:
            on_result(result)

    for r in settled:
        emit(r)
    pending: set[Future[Result | None]] = set()
    it: Iterator[Target] = iter(targets)

    def drain(block: bool) -> None:
        if not pending:
            return
        done, _ = wait(pending, timeout=0.2 if block else 0, return_when=FIRST_COMPLETED)
        for fut in done:
            pending.discard(fut)
            res = fut.result()
            if res is None:
                summary.not_reached += 1
            else:
                emit(res)

    workers = _Workers(min(concurrency, max(1, len(targets))))
    try:
        for t in it:
            while len(pending) >= concurrency and not abandon.is_set():
                drain(block=True)
            if stop.is_set() or abandon.is_set():
                summary.not_reached += 1
                break
            pending.add(workers.submit(tch.touch, t))
            drain(block=False)
        summary.not_reached += sum(1 for _ in it)
        while pending and not abandon.is_set():
            drain(block=True)
        drain(block=False)  # what finished meanwhile still counts
    except BaseException:
        # E.g. a KeyboardInterrupt with no handler installed: stop now, wait for nothing.
        stop.set()
        abandon.set()
        raise
    finally:
        workers.shutdown()
        if pending:
            stop.set()
            summary.abandoned = len(pending)
            summary.not_reached += len(pending)
    summary.elapsed = time.monotonic() - started
    summary.attempts, summary.retries, summary.fatal = tch.attempts, tch.retries, tch.fatal
    summary.interrupted = stop.is_set() and summary.not_reached > 0 and tch.fatal is None
    return summary


def refusals(pf: Preflight, force: bool) -> list[str]:
    """Pre-flight problems that refuse the run (none with ``--force``)."""
    return [] if force else list(pf.problems)


def refuse(problems: Sequence[str]) -> StreamqError:
    text = problems[0] if len(problems) == 1 else "; ".join(problems)
    return Refused(f"refusing to refire: {text} (--force overrides)")


# --------------------------------------------------------------------------- plan and run


def check_selection(*, ids: bool, filters: bool, resume: Path | None = None,
                    journal: Path | None = None, only_if: str | None = None) -> str:
    """Check how the records are selected (``ids``: --id/--ids-from given, ``filters``:
    --status/--older-than/--where/--limit given) before anything is read; the --only-if
    mode in effect (``only_if`` None: the default; a resumed run takes the journal's)."""
    if resume is not None and (ids or filters):
        raise BadInput("--resume takes its ids from the journal: drop --id/--ids-from and "
                       "the selection filters")
    if resume is not None and journal is not None:
        raise BadInput("--resume appends to its own journal: drop --journal")
    if ids and filters:
        raise BadInput("choose ids (--id, --ids-from) or filters (--status, --older-than, "
                       "--where, --limit), not both")
    if resume is None and not ids and not filters:
        raise BadInput("nothing selected: give --id, --ids-from FILE|-, or filters such as "
                       "--status failed (refire never touches the whole table by default)")
    if only_if is not None and only_if not in ONLY_IF:
        raise BadInput(f"invalid --only-if {only_if!r}: use {', '.join(ONLY_IF)}")
    if only_if == "selected" and (ids or resume is not None):
        raise BadInput("--only-if selected needs filters (--status ...): ids carry no status")
    if only_if is None:
        return "selected" if filters else "any"
    return only_if


@dataclass
class RefirePlan:
    """Everything decided before the first write: what :func:`run` touches and how, the
    pre-flight verdict, and what the plan shows (:meth:`to_json`)."""

    settings: Settings
    info: TableInfo
    preflight: Preflight
    run: str  # the run token (a resumed run keeps the journal's)
    only_if: str
    targets: list[Target]  # every record of the run (the journal plans these)
    todo: list[Target]  # the ones to write
    settled: list[Result]  # outcomes known without a write (see presettle)
    rate: float = DEFAULT_RATE
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float = RECORD_DEADLINE  # seconds after a record's first attempt
    duplicates: int = 0  # duplicate ids dropped
    already_done: int = 0  # --resume: done in an earlier attempt, not in targets
    known_missing: int | None = None  # absent when read (None: not every target was read)
    journal: Path | None = None  # --journal FILE, created by run()
    resume: Path | None = None  # --resume FILE, appended to by run()
    resume_contents: jfile.Contents | None = None  # that file as read (its tail repaired)
    dry_run: bool = False
    force: bool = False
    region: str | None = None  # the region the session resolved (for hints)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.settled)

    @property
    def journal_path(self) -> Path | None:
        """Where the outcomes go (and what --resume continues)."""
        return self.resume or self.journal

    @property
    def blocking(self) -> list[str]:
        """Pre-flight problems that refuse the run (none with ``force``)."""
        return refusals(self.preflight, self.force)

    def refusal(self) -> StreamqError | None:
        """The error refusing this run, or None when it may go ahead."""
        blocking = self.blocking
        return refuse(blocking) if blocking else None

    def to_json(self) -> dict[str, Any]:
        from .schemas import REFIRE_PLAN

        pf = self.preflight
        return {
            "schema_version": REFIRE_PLAN,
            "table": self.info.name,
            "records": len(self.targets),
            "duplicates": self.duplicates,
            "already_done": self.already_done,
            "known_missing": self.known_missing,
            "trigger": (f"{pf.function} ({pf.state}, uuid {pf.trigger.get('UUID')})"
                        if pf.trigger is not None else
                        "none: " + (pf.trigger_error or "the table has no stream")),
            "filter": pf.verdict,
            "only_if": self.only_if,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "deadline": self.deadline,
            "run": self.run,
            "journal": str(self.journal_path or ""),
            "dry_run": self.dry_run,
            "problems": pf.problems,
            "warnings": pf.warnings,
            **({"retry_policy": describe_policy(self.settings.retry_policy)}
               if self.only_if in SNAPSHOT_CONDS else {}),
        }

    def resume_command(self) -> str:
        """The command that continues this run, with the connection it used (so that it
        reaches the same table when pasted into another shell)."""
        where = self.journal_path
        return hints.command(self.settings, "refire", "--resume", str(where), "--yes",
                             region=self.region)

    def outcome_error(self, summary: Summary, *,
                      interrupted: bool | None = None) -> StreamqError | None:
        """How a finished run ends: None when every record was refired or skipped; else
        the error to exit with (AwsError 1, PartialFailure 3, Interrupted 130), with how
        to continue. ``interrupted``: the user stopped it (None: ``summary.interrupted``)."""
        where = self.journal_path
        resume = self.resume_command()
        if interrupted is None:
            interrupted = summary.interrupted
        if summary.fatal is not None:
            hint = f"; fix it, then continue with: {resume}" if where else ""
            return AwsError(f"stopped after an error every write would hit: {summary.fatal} "
                            f"({summary.not_reached} record(s) not reached){hint}")
        if interrupted:
            hint = (f"; continue with: {resume}" if where else
                    "; next time use --journal FILE to be able to --resume")
            abandoned = (f" ({summary.abandoned} of them in flight when the run stopped "
                         "waiting: written or not, a resumed run settles them and fires "
                         "none twice)" if summary.abandoned else "")
            return Interrupted(f"interrupted: {summary.not_reached} record(s) not "
                               f"reached{abandoned}{hint}")
        if not summary.ok:
            c = summary.counts
            bad = c["missing"] + c["failed"] + c["unknown"]
            hint = (f"; retry the failed ones with: {resume}"
                    if where and c["failed"] else "")
            unknown = (f", unknown {c['unknown']}: deleted after an attempt whose answer "
                       "was lost" if c["unknown"] else "")
            return PartialFailure(f"{bad} of {summary.total} record(s) not refired "
                                  f"(missing {c['missing']}, failed {c['failed']}{unknown})"
                                  f"{hint}")
        return None


class _NoProgress:
    def advance(self, n: int) -> None:
        pass


def _no_progress(label: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext(_NoProgress())


def prepare(aws: Aws, settings: Settings, *, ids: Sequence[str] = (),
            id_lines: Iterable[str] | None = None,
            selection: Selection | Callable[[], Selection] | None = None,
            resume: Path | None = None, journal: Path | None = None,
            only_if: str | None = None, uuid: str | None = None,
            rate: float = DEFAULT_RATE, concurrency: int = DEFAULT_CONCURRENCY,
            deadline: float = RECORD_DEADLINE, dry_run: bool = False, force: bool = False,
            progress: Callable[[str], AbstractContextManager[Any]] | None = None,
            records: Sequence[Record] | None = None, statuses: Sequence[str] = (),
            keys: Sequence[Item] | None = None, run_token: str | None = None,
            ) -> RefirePlan:
    """Plan a refire; reads, never writes.

    Select by ``ids`` (key texts, as ``--id`` takes them) and ``id_lines`` (what
    ``--ids-from`` reads; None: not given), or by ``selection`` (the filters; a callable
    is called after the table is described, so parsing errors come after that), or
    continue the run journaled in ``resume``. Then: the pre-flight (stream, trigger,
    state), the items read where the trigger's filter, ``--only-if stuck`` or a dry run
    need them, the filter check and the outcomes known without a write. ``keys``: typed
    keys chosen by a caller (redrive), selected like ``ids``; ``run_token``: the token of
    an earlier run to continue (a key it refired is not fired again). ``progress``
    (a label -> context manager whose value has ``advance(n)``) shows the selecting scan.
    ``records``: records already selected (the Python API: ``Outbox.records()``), planned
    as the filters' records are, ``statuses`` being the statuses they were selected by.
    Raises BadInput / NotFound for bad input; refusals are left to the caller
    (:meth:`RefirePlan.refusal`), so that a dry run can show them."""
    has_ids = bool(ids) or id_lines is not None or keys is not None
    mode = check_selection(ids=has_ids, filters=selection is not None or records is not None,
                           resume=resume,
                           journal=journal, only_if=only_if)
    if resume is not None:
        head = read_journal(resume)  # check the file before touching AWS
        if only_if is not None and mode != head.only_if:
            raise BadInput(f"--only-if {mode} differs from the journal's ({head.only_if})")
    # The trigger lookup needs the table's stream ARN, so it follows DescribeTable; the
    # Lambda client it needs is made meanwhile, while DescribeTable is in flight.
    aws.prefetch("lambda")
    info = describe_table(aws, settings.require_table())
    classifier = Classifier(settings, info)

    duplicates = 0
    already_done = 0
    resume_contents: jfile.Contents | None = None
    targets: list[Target]
    if resume is not None:
        state = read_journal(resume, info)
        run_token, mode, targets, already_done = (state.run, state.only_if, state.targets,
                                                  state.done)
        resume_contents = state.contents
    else:
        run_token = run_token or new_run_token()
        if has_ids:
            parsed = [parse_key_text(text, info) for text in ids]
            parsed.extend(iter_key_lines(id_lines or (), info))
            parsed.extend(keys or ())
            keys, duplicates = dedupe(parsed)
            targets = targets_for_keys(keys, mode, None, classifier)
        elif records is not None:
            targets = targets_for_records(records, mode, settings, info, statuses)
        else:
            assert selection is not None  # check_selection: ids, filters or resume
            sel = selection() if callable(selection) else selection
            with (progress or _no_progress)("selecting") as prog:
                records = list(select(aws, info, settings, sel, on_page=prog.advance))
            targets = targets_for_records(records, mode, settings, info, sel.statuses)

    pf = inspect_trigger(aws, info, settings, uuid=uuid)
    # Read the items when the filter needs them, when --only-if stuck needs the created
    # time, and for a dry run (to count the missing ones). Filter-selected ones are read.
    unread = [t for t in targets if not t.read]
    if unread and (pf.patterns or mode in ("stuck", *SNAPSHOT_CONDS) or dry_run):
        items = read_items(aws, info, [t.key for t in unread])
        for t in unread:
            t.item, t.read = items.get(key_id(t.key)), True
            if resume is None:
                capture(t, settings)
    check_filters(pf, info, settings, targets)
    # A fresh classifier: "due" is judged at this moment, as the selection was.
    todo, settled = presettle(targets, Classifier(settings, info), run_token)
    known_missing = (sum(1 for t in targets if t.read and t.item is None)
                     if all(t.read for t in targets) else None)
    return RefirePlan(settings=settings, info=info, preflight=pf, run=run_token,
                      only_if=mode, targets=targets, todo=todo, settled=settled, rate=rate,
                      concurrency=concurrency, deadline=deadline, duplicates=duplicates,
                      already_done=already_done, known_missing=known_missing,
                      journal=journal, resume=resume, resume_contents=resume_contents,
                      dry_run=dry_run, force=force, region=aws.region)


def run_identity(plan: RefirePlan, region: str | None) -> str:
    """The table's identity for streamq.runlock (endpoint, region, table)."""
    return runlock.table_id(plan.info.name, plan.settings.region or region,
                            hints.endpoint_of(plan.settings))


def lock_about(plan: RefirePlan) -> dict[str, Any]:
    """What this run's lock file tells another run about it."""
    return {"table": plan.info.name, "run": plan.run, "records": len(plan.targets),
            "journal": str(plan.journal_path) if plan.journal_path else None}


def overlap_message(plan: RefirePlan, others: Sequence[dict[str, Any]]) -> str:
    runs = "; ".join(runlock.describe(o) for o in others)
    which = "another streamq refire" if len(others) == 1 else f"{len(others)} other refires"
    return (f"{which} on table {plan.info.name!r} is running on this machine ({runs}): a "
            "record in both selections is fired once by each run (a run fires a record at "
            "most once, with its resumes; two runs are two runs)")


def writer_aws(settings: Settings, concurrency: int, *, share: Aws | None = None) -> Aws:
    """The :class:`Aws` for :func:`run`'s writes: a connection per request in flight, and
    botocore's retries off (its ``max_attempts`` counts retries after the first try, so
    0): the Toucher retries itself, each retry waiting for a token of the rate.
    ``share``: the pre-flight's Aws, whose boto3 session (models already loaded) it reuses."""
    return Aws(settings, max_pool_connections=concurrency + 2, max_attempts=0, share=share)


def run(plan: RefirePlan, aws: Aws, *, stop: threading.Event | None = None,
        abandon: threading.Event | None = None,
        on_start: Callable[[], None] | None = None,
        on_result: Callable[[Result], None] | None = None) -> Summary:
    """Carry out a plan (see :func:`execute`) with ``aws`` (see :func:`writer_aws`).

    Creates the journal (``plan.journal``; BadInput if it exists) or appends to it
    (``plan.resume``) before anything else, journals every outcome before handing it to
    ``on_result`` (in the calling thread), and closes the journal however the run ends.
    ``on_start`` runs once the journal is open, before the first outcome. Set ``stop``
    (from any thread) to end the run early: in-flight writes finish, the rest are not
    reached; set ``abandon`` as well to stop waiting for the writes in flight. Refuses a
    dry-run plan, and one the pre-flight refuses (unless forced)."""
    if plan.dry_run:
        raise BadInput("a dry-run plan writes nothing: prepare it without dry_run")
    refusal = plan.refusal()
    if refusal is not None:
        raise refusal
    info = plan.info
    jrn: Journal | None = None
    if plan.resume is not None:
        jrn = Journal.append(plan.resume_contents or plan.resume)
    elif plan.journal is not None:
        try:
            jrn = Journal.create(plan.journal, run=plan.run, info=info,
                                 targets=plan.targets, only_if=plan.only_if,
                                 extra=hints.connection_record(plan.settings, aws.region))
        except jfile.JournalExists:
            resume = hints.command(plan.settings, "refire", "--resume", str(plan.journal),
                                   "--yes", region=plan.region or aws.region)
            raise BadInput(f"journal {plan.journal} already exists: resume it with: "
                           f"{resume}; or choose another file") from None
    try:
        if on_start is not None:
            on_start()

        def emit(res: Result) -> None:
            if jrn is not None:
                jrn.record(res, info)
            if on_result is not None:
                on_result(res)

        return execute(aws, info, plan.settings, plan.todo, run=plan.run, rate=plan.rate,
                       concurrency=plan.concurrency, stop=stop or threading.Event(),
                       abandon=abandon, deadline=plan.deadline, settled=plan.settled,
                       on_result=emit)
    finally:
        if jrn is not None:
            jrn.close()
