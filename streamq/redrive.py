"""``streamq redrive``: re-fire what the trigger gave up on, from its on-failure destination.

The whole run, as the CLI drives it::

    source = redrive.open_source(aws, info, settings, queue=..., bucket=..., prefix=...)
    job = redrive.prepare(aws, settings, source, max_messages=100, dry_run=False, ...)
    # job.entries: every message read, parsed, and resolved to keys;
    # job.plan: the refire plan of the keys still to fire (refire.prepare)
    if (refusal := job.refusal()) is not None:
        job.release(); raise refusal
    redrive.execute(job, stop=threading.Event())    # refire.run + settle each message
    if (error := job.outcome_error()) is not None:
        raise error

1. Messages (destinations.py): up to ``max_messages`` SQS messages (held with a renewed
   visibility timeout) or S3 records not yet marked done. One that is not a stream
   invocation record is reported and left in place; so is one for another table's stream.
2. Keys: an S3 record carries the batch itself (``payload``): its keys are taken from it,
   which works after the stream has trimmed the records. A pointer (SQS) is read back from
   the stream: from ``startSequenceNumber`` (AT_SEQUENCE_NUMBER) to
   ``endSequenceNumber`` in its shard, stopping at the shard's end, keeping the records
   the trigger's filter passes (the batch held only those). What the stream no longer
   holds is reported with the message as ``expired``, never guessed.
3. The keys, in the order of the failures and each once however many messages name it,
   go through the refire engine (:func:`streamq.refire.prepare` / :func:`~streamq.refire.run`:
   pre-flight, conditional write, rate, concurrency, journal). The outbox is the
   reconciliation: a key whose item is gone was delivered since (``missing`` in refire:
   here ``already delivered``, not an error).
4. A message is deleted (SQS) or marked done (S3: a tag, or deleted with ``delete``) only
   when every key in it ended refired or already delivered, and none of its records
   expired (unless ``drop_expired``); ``keep`` never deletes; everything else stays, and
   SQS messages not deleted are made visible again at the end of the run.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import refire
from .aws import Aws
from .config import Settings
from .destinations import (
    DEFAULT_VISIBILITY,
    Destination,
    Message,
    S3Bucket,
    SqsQueue,
    bucket_name_of,
    from_trigger,
    open_destination,
    queue_url_of,
)
from .errors import AwsError, BadInput, Interrupted, NotFound, PartialFailure, StreamqError
from .outbox import Classifier, Item, TableInfo, describe_table, key_id, key_plain

DEFAULT_MAX_MESSAGES = 100
#: What each key of a message ended as (refire's outcomes, in redrive's words).
KEY_OUTCOMES = ("refired", "already delivered", "failed", "not reached", "skipped")
HANDLED = frozenset({"refired", "already delivered"})
_FROM_REFIRE = {"refired": "refired", "missing": "already delivered", "failed": "failed",
                "skipped": "skipped"}

Source = SqsQueue | S3Bucket


# --------------------------------------------------------------------------- entries


@dataclass
class KeyState:
    key: Item
    status: str | None = None  # in the outbox when read: failed | stuck | pending | gone
    outcome: str | None = None  # see KEY_OUTCOMES
    error: str | None = None

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        return {"key": key_plain(self.key, info), "status": self.status,
                "outcome": self.outcome, "error": self.error}


@dataclass
class Entry:
    """One message, what it resolved to, and what became of it."""

    message: Message
    kind: str = "redrive"  # redrive | malformed | other-table
    reason: str | None = None  # why it is malformed / not ours
    keys: list[KeyState] = field(default_factory=list)
    key_source: str | None = None  # payload | stream
    expired: int = 0  # records of the batch the stream no longer holds
    expired_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    result: str = "pending"  # deleted | marked | kept | left | would delete | ...
    result_reason: str | None = None

    @property
    def fully_handled(self) -> bool:
        return all(k.outcome in HANDLED for k in self.keys)

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        from .schemas import REDRIVE_MESSAGE

        doc = {"schema_version": REDRIVE_MESSAGE, **self.message.to_json()}
        doc.update(kind=self.kind, reason=self.reason, key_source=self.key_source,
                   expired_records=self.expired, expired_reason=self.expired_reason,
                   notes=self.notes, result=self.result, result_reason=self.result_reason,
                   keys=[k.to_json(info) for k in self.keys])
        return doc


# --------------------------------------------------------------------------- keys


def unwire_key(keys: dict[str, Any], info: TableInfo) -> Item:
    """A Lambda event record's ``dynamodb.Keys`` (binary as base64 text) -> a key for
    boto3; ValueError when it does not fit the table's key schema."""
    if set(keys) != set(info.key_names):
        raise ValueError(f"keys {sorted(keys)} do not match the key schema of "
                         f"{info.name!r} ({', '.join(info.key_names)})")
    out: Item = {}
    for attr in info.key_attrs:
        av = keys[attr.name]
        if not isinstance(av, dict) or list(av) != [attr.type]:
            raise ValueError(f"key attribute {attr.name!r} is not of type {attr.type}")
        value = av[attr.type]
        if attr.type == "B":
            if isinstance(value, (bytes, bytearray)):
                out[attr.name] = {"B": bytes(value)}
                continue
            try:
                out[attr.name] = {"B": base64.b64decode(str(value), validate=True)}
            except (binascii.Error, ValueError):
                raise ValueError(f"key attribute {attr.name!r} is not base64") from None
        elif not isinstance(value, str) or value == "":
            raise ValueError(f"key attribute {attr.name!r} has no value")
        else:
            out[attr.name] = {attr.type: value}
    return out


def _add_keys(entry: Entry, keys: Sequence[Item]) -> None:
    seen: set[str] = set()
    for key in keys:
        ident = key_id(key)
        if ident not in seen:
            seen.add(ident)
            entry.keys.append(KeyState(key))


def resolve_payload(entry: Entry, info: TableInfo) -> None:
    """Keys from an S3 record's payload: the batch itself."""
    record = entry.message.record
    assert record is not None and record.records is not None
    try:
        keys = [unwire_key(r["dynamodb"]["Keys"], info) for r in record.records]
    except ValueError as exc:
        entry.kind, entry.reason = "malformed", f"payload: {exc}"
        return
    entry.key_source = "payload"
    _add_keys(entry, keys)
    size = record.batch.batch_size
    if size is not None and size != len(record.records):
        entry.notes.append(f"the payload has {len(record.records)} record(s), the batch "
                           f"size says {size}")


def resolve_stream(aws: Aws, entry: Entry, info: TableInfo, patterns: Sequence[str],
                   region: str) -> None:
    """Keys of a pointer, read back from the stream (see the module docstring)."""
    from .filters import FilterPatternError, evaluate_criteria
    from .stream import lambda_record, read_range

    record = entry.message.record
    assert record is not None
    batch = record.batch
    entry.key_source = "stream"
    got = read_range(aws, batch.stream_arn, batch.shard_id, batch.start, batch.end)
    passing: list[dict[str, Any]] = []
    for raw in got.records:
        if patterns:
            try:
                ok, _ = evaluate_criteria(list(patterns),
                                          lambda_record(raw, batch.stream_arn, region))
            except FilterPatternError:
                ok = True  # cannot tell: take every record (the pre-flight reports it)
            if not ok:
                continue
        passing.append(raw)
    chosen = passing
    size = batch.batch_size
    if got.complete and size is not None and len(passing) != size:
        # The filter now differs from the one the batch went through: take every record
        # in the range rather than miss one of the batch.
        chosen = list(got.records)
        entry.notes.append(f"{len(passing)} record(s) in the range pass the trigger's "
                           f"filter now, but the batch had {size}: every one of the "
                           f"{len(chosen)} record(s) in the range is taken")
    try:
        keys = [unwire_key(raw["dynamodb"]["Keys"], info) for raw in chosen]
    except (KeyError, ValueError) as exc:
        entry.kind, entry.reason = "malformed", f"stream record: {exc}"
        return
    _add_keys(entry, keys)
    if not got.complete:
        entry.expired_reason = got.missing
        entry.expired = max((size or 0) - len(passing), 1 if not passing else 0)


def resolve(aws: Aws, info: TableInfo, messages: Sequence[Message], *,
            patterns: Sequence[str] = (), region: str = "us-east-1") -> list[Entry]:
    """Classify each message and resolve the ones for this table to keys, oldest
    failure first."""
    entries: list[Entry] = []
    for msg in messages:
        entry = Entry(msg)
        entries.append(entry)
        record = msg.record
        if record is None:
            entry.kind, entry.reason = "malformed", msg.error
            entry.result = "left"
            continue
        table = record.batch.table
        if table != info.name or (record.batch.region and info.stream_arn and
                                  f":{record.batch.region}:" not in info.stream_arn):
            entry.kind = "other-table"
            entry.reason = (f"for the stream of table {table!r} "
                            f"({record.batch.stream_arn}), not {info.name!r}")
            entry.result = "left"
            continue
        if record.records is not None:
            resolve_payload(entry, info)
        else:
            resolve_stream(aws, entry, info, patterns, region)
        if entry.kind != "redrive":
            entry.result = "left"

    def order(e: Entry) -> tuple[int, str, int, str]:
        rec = e.message.record
        if rec is None or e.kind != "redrive":
            return (1, "", 0, e.message.ident)
        return (0, rec.batch.first_arrival or rec.timestamp, int(rec.batch.start),
                e.message.ident)

    entries.sort(key=order)
    return entries


# --------------------------------------------------------------------------- the job


@dataclass
class Job:
    settings: Settings
    info: TableInfo
    source: Source
    entries: list[Entry]
    plan: refire.RefirePlan | None  # None: no key to fire
    dry_run: bool = False
    keep: bool = False
    delete: bool = False  # S3: delete handled records instead of tagging them
    drop_expired: bool = False
    force: bool = False
    resume: Path | None = None
    warnings: list[str] = field(default_factory=list)
    summary: refire.Summary | None = None
    interrupted: bool = False
    settle_errors: list[str] = field(default_factory=list)

    @property
    def ours(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "redrive"]

    @property
    def unique_keys(self) -> int:
        return 0 if self.plan is None else len(self.plan.targets)

    def refusal(self) -> StreamqError | None:
        if self.plan is None:
            return None
        refusal = self.plan.refusal()
        if refusal is None:
            return None
        return type(refusal)(refusal.message.replace("refusing to refire",
                                                     "refusing to redrive"))

    def release(self) -> None:
        """Leave every message not settled in place (SQS: visible again at once)."""
        self.source.release()

    def counts(self) -> dict[str, int]:
        out = {"messages": len(self.entries), "redrive": len(self.ours),
               "malformed": sum(e.kind == "malformed" for e in self.entries),
               "other_table": sum(e.kind == "other-table" for e in self.entries),
               "keys": sum(len(e.keys) for e in self.ours), "unique_keys": self.unique_keys,
               "expired_records": sum(e.expired for e in self.ours)}
        for result in ("deleted", "marked", "kept", "left"):
            out[result] = sum(e.result == result for e in self.entries)
        per_key: dict[str, int] = dict.fromkeys(KEY_OUTCOMES, 0)
        seen: set[str] = set()
        for e in self.ours:
            for k in e.keys:
                ident = key_id(k.key)
                if k.outcome is not None and ident not in seen:
                    seen.add(ident)
                    per_key[k.outcome] += 1
        out.update({k.replace(" ", "_"): v for k, v in per_key.items()})
        if self.dry_run:
            statuses: dict[str, int] = {}
            seen.clear()
            for e in self.ours:
                for k in e.keys:
                    ident = key_id(k.key)
                    if ident not in seen and k.status is not None:
                        seen.add(ident)
                        statuses[k.status] = statuses.get(k.status, 0) + 1
            out.update({f"status_{s}": n for s, n in sorted(statuses.items())})
        return out

    def to_json(self) -> dict[str, Any]:
        """``redrive -o json`` (schema ``redrive``)."""
        from .schemas import REDRIVE

        return {"schema_version": REDRIVE, "source": self.source.kind, "where": self.source.where,
                "table": self.info.name, "dry_run": self.dry_run,
                "plan": None if self.plan is None else self.plan.to_json(),
                "summary": None if self.summary is None else self.summary.to_json(),
                "counts": self.counts(), "warnings": self.warnings,
                "messages": [e.to_json(self.info) for e in self.entries]}

    def outcome_error(self) -> StreamqError | None:
        """How the run ends: exit 1 after a fatal AWS error, 130 when interrupted, 3 when
        a message stays because a key failed (or was not reached), its records expired
        (without --drop-expired) or it is malformed; else None."""
        where = self.plan.journal_path if self.plan is not None else None
        hint = f"; continue with: streamq redrive --resume {where} --yes" if where else ""
        if self.summary is not None and self.summary.fatal is not None:
            return AwsError(f"stopped after an error every write would hit: "
                            f"{self.summary.fatal}; the messages not fully handled stay{hint}")
        if self.interrupted:
            return Interrupted(f"interrupted: the messages not fully handled stay{hint}")
        c = self.counts()
        stay = [e for e in self.entries if e.kind == "malformed"
                or (e.result == "kept" and e.result_reason != "--keep")]
        if self.settle_errors:
            return PartialFailure(f"{len(self.settle_errors)} handled message(s) could not "
                                  f"be removed: {self.settle_errors[0]}")
        if stay:
            why = []
            if c["failed"] or c["not_reached"]:
                why.append(f"{c['failed'] + c['not_reached']} key(s) not refired")
            expired = sum(1 for e in stay if e.expired and e.kind == "redrive")
            if expired:
                why.append(f"{expired} message(s) with expired records "
                           "(--drop-expired removes them)")
            if c["malformed"]:
                why.append(f"{c['malformed']} malformed message(s) left in place")
            return PartialFailure(f"{len(stay)} message(s) stay: " + ", ".join(why) + hint)
        return None


def open_source(aws: Aws, info: TableInfo, settings: Settings, *, queue: str | None = None,
                bucket: str | None = None, prefix: str | None = None,
                uuid: str | None = None, visibility: int = DEFAULT_VISIBILITY,
                ) -> tuple[Source, dict[str, Any] | None, list[str]]:
    """The destination to read (``--queue`` / ``--bucket``, else the trigger's own), the
    trigger (None when not found: the pre-flight reports it) and warnings."""
    from .trigger import find_trigger

    warnings: list[str] = []
    if queue and bucket:
        raise BadInput("choose --queue or --bucket, not both")
    if prefix is not None and not bucket:
        raise BadInput("--prefix needs --bucket")
    mapping: dict[str, Any] | None
    try:
        mapping = find_trigger(aws, info, function=settings.function, uuid=uuid)
    except NotFound as exc:
        if not (queue or bucket):
            raise NotFound(f"{exc.message}: give the on-failure destination with --queue URL "
                           "or --bucket NAME") from None
        mapping = None
    if queue:
        dest = Destination("sqs", url=queue_url_of(aws, queue))
    elif bucket:
        dest = Destination("s3", bucket=bucket_name_of(bucket),
                           prefix=prefix if prefix is not None else "aws/lambda/")
    else:
        assert mapping is not None
        dest = from_trigger(mapping)
    source = open_destination(aws, dest, visibility=visibility)
    policy = source.redrive_policy()
    if policy and policy.get("maxReceiveCount"):
        warnings.append(f"the queue moves a message to its own dead-letter queue after "
                        f"{policy['maxReceiveCount']} receive(s); every redrive run, dry "
                        "runs included, is one receive")
    return source, mapping, warnings


def prepare(aws: Aws, settings: Settings, *, queue: str | None = None,
            bucket: str | None = None, prefix: str | None = None, uuid: str | None = None,
            max_messages: int = DEFAULT_MAX_MESSAGES, rate: float = refire.DEFAULT_RATE,
            concurrency: int = refire.DEFAULT_CONCURRENCY, dry_run: bool = False,
            force: bool = False, keep: bool = False, delete: bool = False,
            drop_expired: bool = False, journal: Path | None = None,
            resume: Path | None = None, visibility: int = DEFAULT_VISIBILITY,
            wait_seconds: int = 1) -> Job:
    """Read the messages, resolve them to keys and plan the refire; writes nothing.
    SQS messages stay hidden (and their lease is the caller's: :func:`execute`) until
    settled or released; the caller releases them on every path that does not execute."""
    if max_messages < 1:
        raise BadInput("--max-messages must be at least 1")
    if resume is not None and journal is not None:
        raise BadInput("--resume appends to its own journal: drop --journal")
    if keep and (delete or drop_expired):
        raise BadInput("--keep never removes a message: drop --delete/--drop-expired")
    run_token = None
    if resume is not None:
        head = refire.read_journal(resume)
        run_token = head.run
    info = describe_table(aws, settings.require_table())
    if resume is not None and head.table != info.name:
        raise BadInput(f"journal {resume} is for table {head.table!r}, not {info.name!r}")
    source, mapping, warnings = open_source(aws, info, settings, queue=queue, bucket=bucket,
                                            prefix=prefix, uuid=uuid, visibility=visibility)
    if delete and source.kind != "s3":
        raise BadInput("--delete is for an S3 destination (a handled SQS message is always "
                       "deleted; --keep keeps it)")
    messages = source.read(max_messages, wait_seconds=wait_seconds)
    try:
        from .trigger import filter_patterns

        patterns = filter_patterns(mapping) if mapping is not None else []
        entries = resolve(aws, info, messages, patterns=patterns,
                          region=aws.region or "us-east-1")
        keys = [k.key for e in entries if e.kind == "redrive" for k in e.keys]
        plan = None
        if keys:
            plan = refire.prepare(aws, settings, keys=keys, uuid=uuid, rate=rate,
                                  concurrency=concurrency, dry_run=dry_run, force=force,
                                  journal=journal, run_token=run_token)
            if resume is not None:
                plan = replace(plan, resume=resume)
            if dry_run:
                classifier = Classifier(settings, info)
                status = {key_id(t.key): ("gone" if t.item is None else
                                          classifier.classify(t.item).status)
                          for t in plan.targets}
                for e in entries:
                    for k in e.keys:
                        k.status = status.get(key_id(k.key))
        if isinstance(source, S3Bucket) and source.done_before:
            warnings.append(f"{source.done_before} record(s) marked done by an earlier "
                            "redrive were skipped")
    except BaseException:
        source.release()
        raise
    job = Job(settings=settings, info=info, source=source, entries=entries, plan=plan,
              dry_run=dry_run, keep=keep, delete=delete, drop_expired=drop_expired,
              force=force, resume=resume, warnings=warnings)
    if dry_run:
        preview(job)
    return job


def execute(job: Job, *, stop: threading.Event | None = None,
            abandon: threading.Event | None = None,
            on_start: Callable[[], None] | None = None,
            on_result: Callable[[refire.Result], None] | None = None) -> Job:
    """Refire the keys (refire.run, with the plan's journal), then delete or mark each
    message every key of which ended refired or already delivered, and release the rest.
    ``stop``/``abandon``: as for :func:`streamq.refire.run` (Ctrl-C once, twice).
    Returns the job with every entry's result; :meth:`Job.outcome_error` says how it ends."""
    if job.dry_run:
        raise BadInput("a dry-run job changes nothing")
    stop = stop or threading.Event()
    outcomes: dict[str, tuple[str, str | None]] = {}

    def collect(res: refire.Result) -> None:
        outcomes[key_id(res.key)] = (_FROM_REFIRE.get(res.outcome, res.outcome), res.error)
        if on_result is not None:
            on_result(res)

    try:
        with job.source.lease():
            if job.plan is not None and job.plan.total:
                job.summary = refire.run(job.plan, refire.writer_aws(job.settings,
                                                                     job.plan.concurrency),
                                         stop=stop, abandon=abandon, on_start=on_start,
                                         on_result=collect)
                job.interrupted = job.summary.interrupted
            elif on_start is not None:
                on_start()
            for e in job.ours:
                for k in e.keys:
                    k.outcome, k.error = outcomes.get(key_id(k.key), ("not reached", None))
            settle(job)
    finally:
        job.release()
    return job


def decide(job: Job, e: Entry) -> tuple[str, str | None]:
    """A message's result from its keys' outcomes: ``remove`` (delete or mark it),
    ``kept`` or ``left``, and why."""
    if e.kind != "redrive":
        return "left", e.reason
    if not e.fully_handled:
        bad = [k for k in e.keys if k.outcome not in HANDLED]
        return "kept", f"{len(bad)} key(s) not refired ({bad[0].outcome})"
    if e.expired and not job.drop_expired:
        return "kept", f"{e.expired} record(s) expired: {e.expired_reason}"
    if job.keep:
        return "kept", "--keep"
    return "remove", None


def _removed(job: Job) -> str:
    return "marked" if job.source.kind == "s3" and not job.delete else "deleted"


def preview(job: Job) -> None:
    """A dry run's results: as if every key still in the outbox were refired."""
    for e in job.ours:
        for k in e.keys:
            k.outcome = "already delivered" if k.status == "gone" else "refired"
    for e in job.entries:
        result, e.result_reason = decide(job, e)
        e.result = _removed(job) if result == "remove" else result
    for e in job.ours:
        for k in e.keys:
            k.outcome = None


def settle(job: Job) -> None:
    """Decide each message's result and carry it out (see the module docstring)."""
    done: list[Entry] = []
    for e in job.entries:
        result, e.result_reason = decide(job, e)
        if result == "remove":
            done.append(e)
        else:
            e.result = result
    if not done:
        return
    errors = job.source.settle([e.message for e in done],
                               delete=job.delete if job.source.kind == "s3" else True)
    for e in done:
        error = errors.get(e.message.ident, "not settled")
        if error is None:
            e.result = _removed(job)
        else:
            e.result, e.result_reason = "kept", f"could not be removed: {error}"
            job.settle_errors.append(error)
