"""``streamq tail``: the outbox's stream, live, one record at a time, with what the
trigger's current filter does with each record and which pattern decides.

The stream is followed by :class:`streamq.stream.StreamFollower` (every shard, parents
before children, new shards picked up). Each record is decoded into a
:class:`TailRecord`: when, INSERT/MODIFY/REMOVE, the key, what changed (new image
against old), and the :class:`Verdict` of the trigger's FilterCriteria on the record as
Lambda receives it (:func:`streamq.stream.lambda_record`), evaluated with the matcher
that refire's pre-flight and the sandbox use (:mod:`streamq.filters`).

tail is one more reader of the stream: DynamoDB Streams serves at most two readers per
shard at once before throttling them (the ``LimitExceededException`` documentation in
botocore's dynamodbstreams model: "More than 2 processes are reading from the same
streams shard at the same time"; DynamoDB Developer Guide, "Change data capture for
DynamoDB Streams"), and the trigger is one of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .aws import Aws
from .config import Settings
from .errors import BadInput, StreamqError
from .outbox import AV, Condition, Item, TableInfo, _candidates, iso, key_plain, to_plain

EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
START_CHOICES = ("latest", "trim-horizon")


def parse_events(text: str | None) -> frozenset[str]:
    """``insert,modify`` -> {"INSERT", "MODIFY"}; None -> all three."""
    if text is None:
        return frozenset(EVENT_NAMES)
    out = set()
    for part in text.split(","):
        name = part.strip().upper()
        if not name:
            continue
        if name not in EVENT_NAMES:
            raise BadInput(f"invalid --event {part.strip()!r}: use insert, modify or remove "
                           "(comma-separated)")
        out.add(name)
    if not out:
        raise BadInput("--event needs at least one of insert, modify, remove")
    return frozenset(out)


def parse_start(text: str, *, now: float | None = None) -> tuple[str, float | None]:
    """``latest``, ``trim-horizon``, an ISO-8601 time or a duration ago (``10m``) ->
    (LATEST | TRIM_HORIZON | AT_TIMESTAMP, epoch seconds or None)."""
    from datetime import datetime, timezone

    from .durations import parse_duration

    value = text.strip().lower()
    if value == "latest":
        return "LATEST", None
    if value in ("trim-horizon", "trim_horizon"):
        return "TRIM_HORIZON", None
    current = time.time() if now is None else now
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return "AT_TIMESTAMP", current - parse_duration(text, what="--from")
        except BadInput:
            raise BadInput(f"invalid --from {text!r}: use latest, trim-horizon, a time "
                           "(2026-11-27T10:00:00Z) or how long ago (10m, 2h)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    at = parsed.timestamp()
    if at > current + 60:
        raise BadInput(f"invalid --from {text!r}: that is in the future")
    return "AT_TIMESTAMP", at


# ------------------------------------------------------------------------ --where


def _equal(a: AV, b: AV) -> bool:
    (ka, va), = a.items()
    (kb, vb), = b.items()
    if ka != kb:
        return False
    if ka == "N":
        try:
            return Decimal(va) == Decimal(vb)
        except InvalidOperation:
            return bool(va == vb)
    return bool(va == vb)


def _contains(av: AV, needle: AV) -> bool:
    (kind, value), = av.items()
    (nkind, nval), = needle.items()
    if kind == "S" and nkind == "S":
        return str(nval) in str(value)
    if kind in ("SS", "NS", "BS"):
        member = {"SS": "S", "NS": "N", "BS": "B"}[kind]
        return nkind == member and any(_equal({member: v}, needle) for v in value)
    if kind == "L":
        return any(_equal(v, needle) for v in value)
    return False


def _order(av: AV, op: str, bound: AV) -> bool:
    (kind, value), = av.items()
    (bkind, bval), = bound.items()
    if kind != bkind or kind not in ("N", "S"):
        return False  # DynamoDB: a comparison across types is false
    left: Any = Decimal(value) if kind == "N" else str(value).encode()
    right: Any = Decimal(bval) if kind == "N" else str(bval).encode()
    return bool({">": left > right, ">=": left >= right, "<": left < right,
                 "<=": left <= right}[op])


def condition_matches(cond: Condition, item: Item) -> bool:
    """A ``--where`` condition on one item, with the meaning ``list`` gives it in its
    DynamoDB expression (outbox.ExprBuilder): a bare 5 is the number or the string,
    ordering compares numbers (or strings when quoted), != holds for a missing
    attribute."""
    av = item.get(cond.name)
    if cond.op == "?":
        return av is not None
    if cond.op == "!?":
        return av is None
    assert cond.value is not None
    candidates = _candidates(cond.value)
    if cond.op == "~":
        return av is not None and any(_contains(av, c) for c in candidates
                                      if "S" in c or "N" in c)
    if cond.op in (">", ">=", "<", "<="):
        chosen = [c for c in candidates if "N" in c] or candidates[:1]
        return av is not None and _order(av, cond.op, chosen[0])
    equal = av is not None and any(_equal(av, c) for c in candidates)
    return not equal if cond.op == "!=" else equal


# ------------------------------------------------------------------------ filter


@dataclass(frozen=True)
class Verdict:
    """What the trigger's filter does with a record. ``passes`` None: cannot tell (no
    trigger, or a filter that cannot be read or evaluated: ``note`` says why)."""

    passes: bool | None
    pattern: int | None = None  # 1-based: the first pattern that passes it
    pattern_text: str | None = None
    drops: tuple[tuple[str, str], ...] = ()  # (pattern, why it drops the record)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"passes": self.passes, "pattern": self.pattern,
                "pattern_text": self.pattern_text,
                "drops": [{"pattern": p, "reason": r} for p, r in self.drops],
                "note": self.note}


class TriggerFilter:
    """The trigger's current FilterCriteria, re-read every ``refresh`` seconds (a
    ``config-trigger`` change shows within that), and its verdict on a record."""

    def __init__(self, aws: Aws, info: TableInfo, settings: Settings, *,
                 refresh: float = 5.0) -> None:
        self.aws, self.info, self.settings, self.refresh = aws, info, settings, refresh
        self.uuid: str | None = None
        self.function: str | None = None
        self.patterns: list[str] = []
        self.note: str | None = None
        self._read_at = -1e18

    def load(self) -> None:
        from .errors import NotFound
        from .trigger import (
            filter_hidden,
            filter_patterns,
            find_trigger,
            function_name_of,
            get_mapping,
        )

        self._read_at = time.monotonic()
        try:
            if self.uuid is None:
                found = find_trigger(self.aws, self.info, function=self.settings.function)
                self.uuid = str(found["UUID"])
            mapping = get_mapping(self.aws, self.uuid)
        except NotFound as exc:
            self.uuid, self.patterns = None, []
            self.note = f"no trigger: {exc.message}"
            return
        except StreamqError as exc:
            self.note = f"the trigger cannot be read: {exc}"
            return
        self.function = function_name_of(str(mapping.get("FunctionArn", "")))
        hidden = filter_hidden(mapping)
        if hidden is not None:
            self.patterns = []
            self.note = f"the filter is {hidden}"
            return
        self.patterns = filter_patterns(mapping)
        self.note = None

    def maybe_reload(self) -> None:
        if time.monotonic() - self._read_at >= self.refresh:
            self.load()

    def verdict(self, event: dict[str, Any]) -> Verdict:
        from .filters import FilterPatternError, explain_mismatch, matches, parse_pattern

        if self.note is not None:
            return Verdict(None, note=self.note)
        if not self.patterns:
            return Verdict(True, note="no filter")
        try:
            parsed = [parse_pattern(p) for p in self.patterns]
        except FilterPatternError as exc:
            return Verdict(None, note=f"the filter is invalid: {exc}")
        for i, (text, pattern) in enumerate(zip(self.patterns, parsed, strict=True), start=1):
            if matches(pattern, event):
                return Verdict(True, i, text)
        drops = tuple((text, explain_mismatch(pattern, event) or "no match")
                      for text, pattern in zip(self.patterns, parsed, strict=True))
        return Verdict(False, drops=drops)


# ------------------------------------------------------------------------ records


@dataclass
class Change:
    name: str
    old: AV | None
    new: AV | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def to_json(self) -> dict[str, Any]:
        return {"old": None if self.old is None else to_plain(self.old),
                "new": None if self.new is None else to_plain(self.new), "kind": self.kind}


def diff_images(old: Item | None, new: Item | None) -> list[Change]:
    """Attributes that differ between the old and the new image, in a stable order."""
    old, new = old or {}, new or {}
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is not None and b is not None and _same(a, b):
            continue
        out.append(Change(name, a, b))
    return out


def _same(a: AV, b: AV) -> bool:
    try:
        return _equal(a, b) if "N" in a else a == b
    except (TypeError, ValueError):
        return a == b


@dataclass
class TailRecord:
    shard_id: str
    sequence_number: str
    event_name: str
    created: float
    key: Item
    new_image: Item | None
    old_image: Item | None
    view_type: str
    verdict: Verdict
    changes: list[Change] = field(default_factory=list)

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        """One ``tail -o jsonl`` line (schema ``tail-record``)."""
        from .schemas import TAIL_RECORD

        return {
            "schema_version": TAIL_RECORD,
            "time": iso(self.created), "event": self.event_name,
            "key": key_plain(self.key, info), "shard": self.shard_id,
            "sequence_number": self.sequence_number,
            "changes": {c.name: c.to_json() for c in self.changes},
            "filter": self.verdict.to_json(),
            "new_image": None if self.new_image is None else {
                k: to_plain(v) for k, v in self.new_image.items()},
            "old_image": None if self.old_image is None else {
                k: to_plain(v) for k, v in self.old_image.items()},
        }


def _typed(image: dict[str, Any] | None) -> Item | None:
    """A GetRecords image as our low-level items (binary values as bytes already)."""
    return None if image is None else {k: dict(v) for k, v in image.items()}


def decode(shard_id: str, raw: dict[str, Any], info: TableInfo, filt: TriggerFilter,
           region: str) -> TailRecord:
    from .stream import epoch, lambda_record

    ddb = raw.get("dynamodb", {})
    new, old = _typed(ddb.get("NewImage")), _typed(ddb.get("OldImage"))
    event = lambda_record(raw, info.stream_arn or "", region)
    rec = TailRecord(shard_id=shard_id, sequence_number=str(ddb.get("SequenceNumber", "")),
                     event_name=str(raw.get("eventName", "")),
                     created=epoch(ddb.get("ApproximateCreationDateTime", 0)),
                     key=dict(_typed(ddb.get("Keys")) or {}), new_image=new, old_image=old,
                     view_type=str(ddb.get("StreamViewType", "")),
                     verdict=filt.verdict(event))
    if rec.event_name == "MODIFY" and (new is not None or old is not None):
        rec.changes = diff_images(old, new)
    return rec


def selected(rec: TailRecord, events: frozenset[str], where: Sequence[Condition]) -> bool:
    """--event and --where: conditions hold on the new image (the old one for a REMOVE;
    the key alone on a KEYS_ONLY stream)."""
    if rec.event_name not in events:
        return False
    if not where:
        return True
    item = rec.new_image if rec.new_image is not None else rec.old_image
    if item is None:
        item = rec.key
    return all(condition_matches(c, item) for c in where)


@dataclass
class TailStats:
    seen: int = 0
    shown: int = 0
    passed: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, rec: TailRecord) -> None:
        self.shown += 1
        if rec.verdict.passes is True:
            self.passed += 1
        elif rec.verdict.passes is False:
            self.dropped += 1

    def summary(self) -> str:
        took = time.monotonic() - self.started
        return (f"tail: {self.shown} record(s) shown ({self.passed} pass the filter, "
                f"{self.dropped} dropped) of {self.seen} read in {took:.0f}s")


def tail(aws: Aws, info: TableInfo, settings: Settings, *, start: str = "LATEST",
         at: float | None = None, events: frozenset[str] = frozenset(EVENT_NAMES),
         where: Sequence[Condition] = (), stop: threading.Event | None = None,
         stats: TailStats | None = None, poll_interval: float = 0.5,
         filter_refresh: float = 5.0,
         on_start: Callable[[int, TriggerFilter], None] | None = None,
         ) -> Iterator[TailRecord]:
    """The stream's records as they arrive, decoded, selected, with the filter's verdict.
    ``on_start(shards, filter)`` is called once the stream's shards are known."""
    from .stream import StreamFollower

    if not info.stream_enabled or not info.stream_arn:
        from .errors import NotFound

        raise NotFound(f"table {info.name!r} has no stream enabled: nothing to tail")
    region = aws.region or "us-east-1"
    filt = TriggerFilter(aws, info, settings, refresh=filter_refresh)
    filt.load()
    follower = StreamFollower(aws, info.stream_arn, start=start, at=at,
                              poll_interval=poll_interval)
    stats = stats if stats is not None else TailStats()
    follower.refresh()
    if on_start is not None:
        on_start(len(follower.tracker.known), filt)
    for shard_id, raw in follower.follow(stop):
        stats.seen += 1
        filt.maybe_reload()
        rec = decode(shard_id, raw, info, filt, region)
        if selected(rec, events, where):
            stats.add(rec)
            yield rec


def describe_filter(filt: TriggerFilter) -> str:
    if filt.note is not None:
        return f"filter verdicts unknown: {filt.note}"
    who = f"trigger {filt.function}" if filt.function else "the trigger"
    if not filt.patterns:
        return f"{who} has no filter: every record reaches it"
    return f"verdicts from {who}'s filter ({len(filt.patterns)} pattern(s), re-read " \
           f"every {filt.refresh:g}s)"


def describe_start(start: str, at: float | None) -> str:
    if start == "AT_TIMESTAMP" and at is not None:
        return f"from {iso(at)}"
    return {"LATEST": "from now on (latest)",
            "TRIM_HORIZON": "from the oldest record (trim-horizon)"}.get(start, start)

