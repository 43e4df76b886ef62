"""The outbox table: key schema, key codec, record classification, scan/query.

Items are kept in DynamoDB's low-level JSON form (``{"S": "x"}``) from the wire
to the renderer; :func:`to_plain` turns them into plain JSON values on output.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from .aws import Aws, aws_errors
from .config import Settings
from .errors import BadInput, NotFound
from .retry import RETRY_STATES

AV = dict[str, Any]  # one low-level attribute value, e.g. {"S": "x"}
Item = dict[str, AV]  # one low-level item

STATUSES = ("failed", "stuck", "pending")
DEFAULT_STATUSES = ("failed", "stuck")
#: Sub-statuses of ``failed`` from the retry policy (streamq.retry): selectable like a
#: status (``--status due``), never a record's ``status`` (failed stays failed).
RETRY_STATUSES = RETRY_STATES
SELECTABLE = (*STATUSES, *RETRY_STATUSES)
_RETRY_SET = frozenset(RETRY_STATUSES)


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class KeyAttr:
    name: str
    type: str  # S | N | B


@dataclass(frozen=True)
class IndexInfo:
    name: str
    hash_key: KeyAttr
    range_key: KeyAttr | None
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    projected: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableInfo:
    name: str
    hash_key: KeyAttr
    range_key: KeyAttr | None = None
    stream_arn: str | None = None
    stream_enabled: bool = False
    stream_view_type: str | None = None
    item_count: int = 0
    size_bytes: int = 0
    indexes: tuple[IndexInfo, ...] = ()

    @property
    def key_attrs(self) -> tuple[KeyAttr, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.key_attrs)


def _key_attrs(schema: Sequence[Mapping[str, str]], types: Mapping[str, str]) -> tuple[
        KeyAttr, KeyAttr | None]:
    hash_key = next(KeyAttr(k["AttributeName"], types[k["AttributeName"]])
                    for k in schema if k["KeyType"] == "HASH")
    range_key = next((KeyAttr(k["AttributeName"], types[k["AttributeName"]])
                      for k in schema if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key


def describe_table(aws: Aws, name: str) -> TableInfo:
    client = aws.client("dynamodb")
    try:
        with aws_errors():
            desc = client.describe_table(TableName=name)["Table"]
    except NotFound:
        raise NotFound(f"table {name!r} not found in region {aws.region or '?'}") from None
    types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
    hash_key, range_key = _key_attrs(desc["KeySchema"], types)
    indexes = []
    for gsi in desc.get("GlobalSecondaryIndexes", []) or []:
        ih, ir = _key_attrs(gsi["KeySchema"], types)
        proj = gsi.get("Projection", {})
        indexes.append(IndexInfo(gsi["IndexName"], ih, ir, proj.get("ProjectionType", "ALL"),
                                 tuple(proj.get("NonKeyAttributes", []) or [])))
    spec = desc.get("StreamSpecification") or {}
    return TableInfo(
        name=name,
        hash_key=hash_key,
        range_key=range_key,
        stream_arn=desc.get("LatestStreamArn"),
        stream_enabled=bool(spec.get("StreamEnabled")),
        stream_view_type=spec.get("StreamViewType"),
        item_count=int(desc.get("ItemCount", 0) or 0),
        size_bytes=int(desc.get("TableSizeBytes", 0) or 0),
        indexes=tuple(indexes),
    )


# --------------------------------------------------------------------------- values


def _number(text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        value = float(text)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return int(text)


def to_plain(av: AV) -> Any:
    """Low-level attribute value -> plain JSON value (numbers as numbers, bytes as base64)."""
    (kind, value), = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return _number(value)
    if kind == "M":
        return {k: to_plain(v) for k, v in value.items()}
    if kind == "L":
        return [to_plain(v) for v in value]
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "SS":
        return list(value)
    if kind == "NS":
        return [_number(v) for v in value]
    if kind == "B":
        return _b64(value)
    if kind == "BS":
        return [_b64(v) for v in value]
    raise ValueError(f"unknown DynamoDB type {kind}")  # pragma: no cover


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def item_to_plain(item: Item) -> dict[str, Any]:
    return {k: to_plain(v) for k, v in item.items()}


# --------------------------------------------------------------------------- keys


def key_of(item: Item, info: TableInfo) -> Item:
    return {name: item[name] for name in info.key_names}


def key_plain(key: Item, info: TableInfo) -> dict[str, Any]:
    """A key as plain JSON values that read back as the same key: a number a JSON (binary
    float) number would round, such as 1.3435253165212111 (DynamoDB keeps 38 digits), is
    given as a string; the key schema types it as a number again when read."""
    return {name: _exact(key[name]) for name in info.key_names}


def _exact(av: AV) -> Any:
    plain = to_plain(av)
    # (0.9999999999999999445 becomes the float 1.0, printed as the int 1: both checked)
    if "N" in av and isinstance(plain, (int, float)) and Decimal(repr(plain)) != Decimal(
            av["N"]):
        return av["N"]
    return plain


def _raw_safe(raw: str) -> bool:
    """A value printed bare must read back as itself, one line, never a comment or JSON."""
    return (raw != "" and raw.isprintable() and raw == raw.strip()
            and not raw.startswith(("{", '"', "#")))


def key_text(key: Item, info: TableInfo) -> str:
    """One line that :func:`parse_key_text` reads back to the same key.

    A single string/number key prints raw unless it could be misread (empty, starts
    with ``{``, a quote or ``#``, surrounding spaces, any non-printable character); every
    other key prints as a compact JSON object of its key attributes.
    """
    if info.range_key is None:
        attr = info.hash_key
        av = key[attr.name]
        raw = av.get(attr.type)
        if isinstance(raw, str) and _raw_safe(raw):
            return raw
    return json.dumps(key_plain(key, info), ensure_ascii=False, separators=(",", ":"))


def _typed(value: Any, attr: KeyAttr, table: str) -> AV:
    where = f"key attribute {attr.name!r} of table {table!r}"
    got = _shown(value)
    if attr.type == "S":
        if not isinstance(value, str) or value == "":
            raise BadInput(f"{where} is a string (S); got {got}")
        return {"S": value}
    if attr.type == "N":
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise BadInput(f"{where} is a number (N); got {got}")
        try:
            dec = Decimal(str(value).strip())
        except InvalidOperation:
            raise BadInput(f"{where} is a number (N); got {got}") from None
        if not dec.is_finite():
            raise BadInput(f"{where} is a number (N); got {got}")
        return {"N": str(value).strip()}
    if not isinstance(value, str):
        raise BadInput(f"{where} is binary (B), given as base64; got {got}")
    try:
        return {"B": base64.b64decode(value, validate=True)}
    except (binascii.Error, ValueError):
        raise BadInput(f"{where} is binary (B), given as base64; got {got}") from None


def _shown(value: Any) -> str:
    from .inputs import clip

    return str(value) if isinstance(value, Decimal) else clip(value) if isinstance(
        value, str) else clip(json.dumps(value, default=str))


def parse_key_object(obj: Any, info: TableInfo) -> Item:
    """A plain JSON key object (or a ``list -o jsonl`` record carrying ``key``)."""
    if isinstance(obj, dict) and isinstance(obj.get("key"), dict) and "status" in obj:
        obj = obj["key"]
    if not isinstance(obj, dict):
        raise BadInput(f"a key must be a JSON object of {', '.join(info.key_names)}; got {obj!r}")
    missing = [n for n in info.key_names if n not in obj]
    extra = [n for n in obj if n not in info.key_names]
    if missing or extra:
        want = ", ".join(info.key_names)
        shown = json.dumps(obj, ensure_ascii=False, default=str)
        raise BadInput(f"key {shown} does not match the key "
                       f"schema of {info.name!r} ({want})")
    return {a.name: _typed(obj[a.name], a, info.name) for a in info.key_attrs}


def parse_key_text(text: str, info: TableInfo) -> Item:
    """Read one key as ``list -o ids`` prints it (or any JSON key object / jsonl record)."""
    from .inputs import clip, loads

    s = text.strip("\r\n")
    if s.lstrip().startswith("{"):
        # Decimal: a number key keeps every digit (a float would round it).
        return parse_key_object(loads(s, what=f"invalid JSON key {clip(s)}",
                                      parse_float=Decimal), info)
    if info.range_key is not None:
        raise BadInput(f"table {info.name!r} has a composite key ({', '.join(info.key_names)}): "
                       f"give it as JSON, e.g. "
                       f"'{{\"{info.hash_key.name}\": ..., \"{info.range_key.name}\": ...}}'; "
                       f"got {s!r}")
    return {info.hash_key.name: _typed(s, info.hash_key, info.name)}


def iter_key_lines(lines: Iterable[str], info: TableInfo) -> Iterator[Item]:
    """Keys from ``ids``/jsonl lines; blank lines and ``#`` comments are skipped."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield parse_key_text(line, info)
        except BadInput as exc:
            raise BadInput(f"line {lineno}: {exc.message}") from None


def key_id(key: Item) -> str:
    """A hashable identity for de-duplication (numbers compared as numbers: 7 == 7.0)."""
    def canon(av: AV) -> str:
        (kind, value), = av.items()
        if kind == "N":
            return "N:" + str(Decimal(value).normalize())
        return f"{kind}:{_b64(value)}"

    return json.dumps({k: canon(v) for k, v in sorted(key.items())}, sort_keys=True)


# --------------------------------------------------------------------------- records


def parse_timestamp(av: AV | None) -> float | None:
    """Epoch seconds from an ISO-8601 string or an epoch seconds/milliseconds number."""
    if not av:
        return None
    if "S" in av:
        text = av["S"].strip()
        # The common case first, without an exception: an ISO date-time ("2026-...").
        # A number never has "-" after four digits, so this never shadows one.
        if text[4:5] == "-" and text[:4].isdigit():
            try:
                dt = datetime.fromisoformat(text)  # Python 3.11+ reads a trailing Z
            except ValueError:
                pass  # 3.10, or another form: the general path below
            else:
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
                return dt.timestamp()
        try:
            value = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.timestamp()
    elif "N" in av:
        try:
            value = float(av["N"])
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(value):
        return None
    # Epoch milliseconds: anything past 1e11 s (year 5138) is surely ms.
    return value / 1000.0 if abs(value) >= 1e11 else value


_fromiso = datetime.fromisoformat
_UTC = timezone.utc


def created_time(av: AV | None) -> float | None:
    """:func:`parse_timestamp`, its common case (an ISO date-time string without
    surrounding spaces) first and without a detour: classification runs it for every
    item a scan reads.
    ``fromisoformat`` rejects surrounding whitespace, so any other form takes the general
    path and the result is the same (tests/test_outbox_fast.py)."""
    if av is not None:
        s = av.get("S")
        if s is not None and s[4:5] == "-" and s[:4].isdigit():
            try:
                dt = _fromiso(s)
            except ValueError:
                return parse_timestamp(av)
            return (dt.replace(tzinfo=_UTC) if dt.tzinfo is None else dt).timestamp()
    return parse_timestamp(av)


def _as_int(av: AV | None) -> int | None:
    if av and "N" in av:
        try:
            return int(Decimal(av["N"]))
        except (InvalidOperation, ValueError):
            return None
    return None


def _as_error(av: AV | None) -> str | None:
    if not av or "NULL" in av:
        return None
    if "S" in av:
        return av["S"] or None
    # Any other non-NULL value counts as an error: the same rule `refire --only-if failed`
    # checks in its write condition (present, not NULL, not the empty string).
    plain = to_plain(av)
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


@dataclass(slots=True)
class Record:
    key: Item
    item: Item
    status: str
    age_seconds: float | None
    created_at: float | None
    attempts: int | None
    error: str | None
    refire_count: int | None
    #: failed records only: due | waiting | dead (streamq.retry), else None
    retry: str | None = None
    #: when a failed record is (or became) due; None: dead, not failed, or no known time
    next_due_at: float | None = None
    #: the time its backoff counts from, and the attribute it came from (the last-attempt
    #: attribute; the refire timestamp when later; the created time when both are absent)
    last_attempt_at: float | None = None
    last_attempt_from: str | None = None

    def selected_by(self, wanted: set[str] | frozenset[str]) -> bool:
        """Does a status selection (``--status failed,due``) include this record?"""
        return self.status in wanted or (self.retry is not None and self.retry in wanted)

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        """The record as ``list -o jsonl`` and ``show -o json`` print it (schema
        ``record``)."""
        from .schemas import RECORD

        return {
            "schema_version": RECORD,
            "key": key_plain(self.key, info),
            "status": self.status,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "created_at": None if self.created_at is None else iso(self.created_at),
            "attempts": self.attempts,
            "error": self.error,
            "refire_count": self.refire_count,
            "retry": self.retry,
            "next_due_at": None if self.next_due_at is None else iso(self.next_due_at),
            "item": item_to_plain(self.item),
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


class Classifier:
    """failed: error attribute present and non-empty; stuck: no error and older than
    stuck-after (or of unknown age); pending: younger.

    A failed record also gets its retry state from the policy (streamq.retry): dead when
    its attempts reached max_attempts, else due once its backoff has passed since its last
    attempt. The last attempt is the later of the last-attempt attribute and the refire
    timestamp, or the created time when neither is there. A refire newer than the last
    attempt is in flight (the handler has not processed it yet): the record waits at
    least --stuck-after from it, so a scheduler does not fire it again while the trigger
    still has it, and does fire it again if it was lost."""

    def __init__(self, settings: Settings, info: TableInfo, now: float | None = None, *,
                 retry: bool = True) -> None:
        self.s = settings
        self.info = info
        self.now = time.time() if now is None else now
        self.policy = settings.retry_policy
        # Looked up once, not per item (this runs for every item a scan reads).
        self._keys = info.key_names
        self._attrs = (settings.created_attr, settings.error_attr, settings.attempts_attr,
                       settings.refire_count_attr)
        self._stuck_after = settings.stuck_after
        #: compute failed records' retry state (False: the selection never reads it)
        self.retry = retry

    def classify(self, item: Item) -> Record:
        created = created_time(item.get(self._attrs[0]))
        err = item.get(self._attrs[1])
        error = None if err is None else _as_error(err)
        return self._record(item, created, error)

    def _record(self, item: Item, created: float | None, error: str | None) -> Record:
        age = None if created is None else self.now - created
        if error is not None:
            status = "failed"
        elif age is None or age >= self._stuck_after:
            status = "stuck"
        else:
            status = "pending"
        attempts = item.get(self._attrs[2])
        count = item.get(self._attrs[3])
        rec = Record({name: item[name] for name in self._keys}, item, status, age, created,
                     None if attempts is None else _as_int(attempts), error,
                     None if count is None else _as_int(count))
        if status == "failed" and self.retry:
            self._retry(rec, item)
        return rec

    def selected(self, items: Iterable[Item], wanted: set[str] | frozenset[str],
                 ) -> list[Record]:
        """The records of a page that ``wanted`` selects (what :meth:`classify` and
        :meth:`Record.selected_by` decide, item by item), without building a record for
        an item that cannot be selected: a scan of a large outbox is mostly pending
        records that ``list`` never shows, and this loop is its cost per item."""
        created_attr, error_attr = self._attrs[0], self._attrs[1]
        now, stuck_after = self.now, self._stuck_after
        # A failed record is selected by its status, or by its retry state.
        failed_maybe = "failed" in wanted or bool(wanted & _RETRY_SET)
        stuck, pending = "stuck" in wanted, "pending" in wanted
        record = self._record
        out: list[Record] = []
        for item in items:
            err = item.get(error_attr)
            error = None if err is None else _as_error(err)
            if error is None:
                created = created_time(item.get(created_attr))
                if stuck if created is None or now - created >= stuck_after else pending:
                    out.append(record(item, created, None))
            elif failed_maybe:
                rec = record(item, created_time(item.get(created_attr)), error)
                if rec.selected_by(wanted):
                    out.append(rec)
        return out

    def _retry(self, rec: Record, item: Item) -> None:
        s = self.s
        last = parse_timestamp(item.get(s.last_attempt_attr))
        source = s.last_attempt_attr if last is not None else None
        refired = parse_timestamp(item.get(s.refired_attr))
        if refired is not None and (last is None or refired > last):
            last, source = refired, s.refired_attr
        if last is None and rec.created_at is not None:
            last, source = rec.created_at, s.created_attr
        rec.last_attempt_at, rec.last_attempt_from = last, source
        # A refire newer than the last attempt is in flight: the handler has not attempted
        # the record since. It is due again only once a record would count as stuck (the
        # pipeline should have handled it by then: the refire was probably lost), or
        # after its backoff if that is longer; never while the trigger still has it.
        in_flight = s.stuck_after if source == s.refired_attr else 0.0
        rec.retry, rec.next_due_at = self.policy.state(rec.attempts, last, key_id(rec.key),
                                                       self.now, min_wait=in_flight)


# --------------------------------------------------------------------------- --where


_OPS = ("!=", ">=", "<=", "!?", "=", ">", "<", "~", "?")


@dataclass(frozen=True)
class Condition:
    name: str
    op: str  # = != > >= < <= ~ (contains) ? (exists) !? (not exists)
    value: str | None = None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value or ''}"


def parse_where(text: str) -> Condition:
    """``attr=value``, ``attr!=value``, ``attr>=n`` (and > < <=), ``attr~text`` (contains),
    ``attr?`` (exists), ``attr!?`` (does not exist). A name holding an operator
    character is written as a JSON string: ``"a=b"=1``. A value written as a JSON
    string (``"42"``) is only ever a string."""
    s = text.strip()
    if s.startswith('"'):
        try:
            name, end = json.JSONDecoder().raw_decode(s)
        except ValueError:
            raise BadInput(f"invalid --where {text!r}: unterminated quoted name") from None
        rest = s[end:]
    else:
        idx = min((i for i in (s.find(c) for c in "=!<>~?") if i >= 0), default=-1)
        if idx <= 0:
            raise BadInput(f"invalid --where {text!r}: expected NAME=VALUE, NAME!=VALUE, "
                           "NAME>=N, NAME<N, NAME~TEXT, NAME? or NAME!?")
        name, rest = s[:idx].strip(), s[idx:]
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if not name or op is None:
        raise BadInput(f"invalid --where {text!r}: expected NAME=VALUE, NAME!=VALUE, "
                       "NAME>=N, NAME<N, NAME~TEXT, NAME? or NAME!?")
    value = rest[len(op):]
    if op in ("?", "!?"):
        if value.strip():
            raise BadInput(f"invalid --where {text!r}: nothing may follow {op}")
        return Condition(name, op)
    if value == "":
        raise BadInput(f"invalid --where {text!r}: missing value after {op}")
    if op in (">", ">=", "<", "<=") and not value.startswith('"') and _num(value) is None:
        raise BadInput(f"invalid --where {text!r}: {op} needs a number "
                       '(or a quoted string, e.g. created_at>="2026-01-01")')
    return Condition(name, op, value)


def _num(text: str) -> str | None:
    try:
        dec = Decimal(text.strip())
    except InvalidOperation:
        return None
    return text.strip() if dec.is_finite() else None


class ExprBuilder:
    """Expression text with every name and value behind a placeholder."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, AV] = {}
        self._by_name: dict[str, str] = {}

    def name(self, attr: str) -> str:
        if attr not in self._by_name:
            ph = f"#n{len(self._by_name)}"
            self._by_name[attr] = ph
            self.names[ph] = attr
        return self._by_name[attr]

    def value(self, av: AV) -> str:
        ph = f":v{len(self.values)}"
        self.values[ph] = av
        return ph

    def condition(self, c: Condition) -> str:
        n = self.name(c.name)
        if c.op == "?":
            return f"attribute_exists({n})"
        if c.op == "!?":
            return f"attribute_not_exists({n})"
        assert c.value is not None
        candidates = _candidates(c.value)
        if c.op == "~":
            return _any([f"contains({n}, {self.value(av)})"
                         for av in candidates if "S" in av or "N" in av])
        dyn_op = {"=": "=", "!=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[c.op]
        if c.op in (">", ">=", "<", "<="):
            # Ordering compares numbers (attempts>=3), or strings when quoted
            # (created_at>="2026-01-01"), never both.
            candidates = [av for av in candidates if "N" in av] or candidates[:1]
        if c.op in (">", ">=", "<", "<="):
            # Guarded by type: DynamoDB says false on a type mismatch, moto raises.
            (kind,) = candidates[0]
            return (f"(attribute_type({n}, {self.value({'S': kind})}) AND "
                    f"{n} {dyn_op} {self.value(candidates[0])})")
        alt = _any([f"{n} {dyn_op} {self.value(av)}" for av in candidates])
        return f"NOT {alt}" if c.op == "!=" else alt


def _any(terms: list[str]) -> str:
    """OR of terms, parenthesized only when there are several (DynamoDB rejects
    redundant parentheses)."""
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def _candidates(value: str) -> list[AV]:
    """The typed values a --where value may mean: ``5`` is N 5 or S "5"."""
    if value.startswith('"'):
        try:
            text = json.loads(value)
        except ValueError:
            raise BadInput(f"invalid quoted value {value!r}") from None
        if not isinstance(text, str):
            raise BadInput(f"invalid quoted value {value!r}")
        return [{"S": text}]
    out: list[AV] = [{"S": value}]
    if _num(value) is not None:
        out.append({"N": value.strip()})
    if value in ("true", "false"):
        out.append({"BOOL": value == "true"})
    if value == "null":
        out.append({"NULL": True})
    return out


# --------------------------------------------------------------------------- scanning


def only_failed(statuses: Iterable[str]) -> bool:
    """Does the status selection hold failed records only (failed, due, waiting, dead)?"""
    wanted = set(statuses)
    return bool(wanted) and wanted <= {"failed", *RETRY_STATUSES}


@dataclass
class Selection:
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    older_than: float | None = None
    where: tuple[Condition, ...] = ()
    limit: int | None = None
    index: str | None = None
    segments: int | None = None  # None: chosen from the table size
    segment: tuple[int, int] | None = None  # (i, N): only segment i of N
    # ids, --count, stats: read only the key, the created time and the error (status and
    # age), plus what the retry state reads when a retry status is selected or
    # ``retry_counts`` (stats) asks for it; --where filters run server-side, before the
    # projection applies.
    keys_only: bool = False
    retry_counts: bool = False
    #: called with every record read and classified, selected or not (e.g. a scheduler's
    #: round counts the dead and the waiting while it selects the due)
    observe: Callable[[Record], None] | None = field(default=None, compare=False)


@dataclass
class ScanPlan:
    operation: str  # Scan | Query
    index: str | None
    segments: list[int]
    total_segments: int
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        target = f"index {self.index}" if self.index else "table"
        seg = (f", segments {self.segments[0]}/{self.total_segments}"
               if len(self.segments) == 1 and self.total_segments > 1
               else f", {self.total_segments} parallel segments" if self.total_segments > 1
               else "")
        return f"{self.operation} on {target}{seg}: {self.reason}"


def parse_segment(text: str) -> tuple[int, int]:
    # Digits bounded: N is at most 1000000, and int() of 4300+ digits raises ValueError.
    m = re.fullmatch(r"\s*(\d{1,7})\s*/\s*(\d{1,7})\s*", text)
    if not m:
        raise BadInput(f"invalid --segment {text!r}: use I/N, e.g. 0/4 (I from 0 to N-1)")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= 1_000_000 or not 0 <= i < n:
        raise BadInput(f"invalid --segment {text!r}: need 0 <= I < N and 1 <= N <= 1000000")
    return i, n


def auto_segments(info: TableInfo) -> int:
    """One segment per MiB of table (a Scan page is at most 1 MB), 1 to 8."""
    return max(1, min(8, math.ceil(info.size_bytes / 1_048_576)))


def needs_retry(sel: Selection) -> bool:
    """Whether records need their retry state: always for whole records (list's columns,
    json), for a keys-only read only when a retry status is selected or counted."""
    return (not sel.keys_only or sel.retry_counts
            or bool(set(sel.statuses) & set(RETRY_STATUSES)))


def _classify_attrs(info: TableInfo, settings: Settings) -> set[str]:
    """Everything classification reads (status, retry state, list's columns)."""
    return {*info.key_names, settings.created_attr, settings.error_attr,
            settings.attempts_attr, settings.refire_count_attr, settings.last_attempt_attr,
            settings.refired_attr}


def _missing(ix: IndexInfo, info: TableInfo, attrs: set[str]) -> set[str]:
    """The attributes of ``attrs`` that the index does not project."""
    if ix.projection == "ALL":
        return set()
    have = {*info.key_names, ix.hash_key.name, *([ix.range_key.name] if ix.range_key else []),
            *ix.projected}
    return attrs - have


def _choose_index(info: TableInfo, settings: Settings, sel: Selection) -> tuple[
        IndexInfo | None, str]:
    failed_only = only_failed(sel.statuses)
    filtered = {c.name for c in sel.where} | ({settings.error_attr} if failed_only else set())
    if sel.index:
        index = next((ix for ix in info.indexes if ix.name == sel.index), None)
        if index is None:
            have = ", ".join(ix.name for ix in info.indexes) or "none"
            raise NotFound(f"table {info.name!r} has no index {sel.index!r} (indexes: {have})")
        lacking = _missing(index, info, filtered)
        if lacking:
            raise BadInput(f"index {index.name!r} does not project {', '.join(sorted(lacking))}"
                           " that the selection filters on: drop --index or use an index "
                           "that projects them")
        return index, "--index given"
    # Only an index that holds everything the filters and the classification read:
    # a record whose created time or error is not projected would be misclassified.
    needed = _classify_attrs(info, settings) | filtered
    for ix in info.indexes:
        if _missing(ix, info, needed):
            continue
        if any(c.op == "=" and c.name == ix.hash_key.name for c in sel.where):
            return ix, f"--where on {ix.hash_key.name!r}, the index's hash key"
        keyed = (ix.hash_key.name, ix.range_key.name if ix.range_key else None)
        if failed_only and settings.error_attr in keyed:
            return ix, (f"sparse index keyed on the error attribute {settings.error_attr!r} "
                        "holds only failed records")
    return None, "full table scan"


def plan_scan(info: TableInfo, settings: Settings, sel: Selection) -> ScanPlan:
    """Choose Scan or Query, table or index, and build the expressions."""
    index, reason = _choose_index(info, settings, sel)
    key_cond = None
    if index is not None:
        key_cond = next((c for c in sel.where if c.op == "=" and c.name == index.hash_key.name),
                        None)
        if _missing(index, info, _classify_attrs(info, settings)):
            reason += f" (projection {index.projection}: items are re-read from the table)"

    eb = ExprBuilder()
    params: dict[str, Any] = {"TableName": info.name}
    filters = [eb.condition(c) for c in sel.where if c is not key_cond]
    if only_failed(sel.statuses):
        err = eb.name(settings.error_attr)
        filters.append(f"attribute_exists({err}) AND {err} <> {eb.value({'S': ''})}")
    if key_cond is not None and index is not None:
        assert key_cond.value is not None
        raw = key_cond.value
        if index.hash_key.type == "S" and raw.startswith('"'):
            raw = _candidates(raw)[0]["S"]
        av = _typed(raw, index.hash_key, info.name)
        params["KeyConditionExpression"] = f"{eb.name(key_cond.name)} = {eb.value(av)}"
    if filters:
        params["FilterExpression"] = " AND ".join(filters)
    rehydrate = index is not None and _missing(index, info, _classify_attrs(info, settings))
    if sel.keys_only and not rehydrate:
        attrs = [*info.key_names, settings.created_attr, settings.error_attr]
        if needs_retry(sel):
            attrs += [settings.attempts_attr, settings.last_attempt_attr, settings.refired_attr]
        params["ProjectionExpression"] = ", ".join(eb.name(a) for a in dict.fromkeys(attrs))
    if eb.names:
        params["ExpressionAttributeNames"] = eb.names
    if eb.values:
        params["ExpressionAttributeValues"] = eb.values
    index_name = index.name if index is not None else None
    if index_name is not None:
        params["IndexName"] = index_name

    if key_cond is not None:
        return ScanPlan("Query", index_name, [0], 1, params, reason)
    if sel.segment is not None:
        i, n = sel.segment
        return ScanPlan("Scan", index_name, [i], n, params, reason)
    n = sel.segments if sel.segments is not None else auto_segments(info)
    return ScanPlan("Scan", index_name, list(range(n)), n, params, reason)


ProgressFn = Callable[[int], None]


def iter_pages(aws: Aws, plan: ScanPlan, *, stop: threading.Event | None = None,
               on_page: ProgressFn | None = None) -> Generator[list[Item], None, None]:
    """The pages the plan reads, as lists of items (parallel segments in threads, pages
    in the order they arrive)."""
    client = aws.client("dynamodb", scan=True)
    stop = stop or threading.Event()
    call = client.query if plan.operation == "Query" else client.scan

    def pages(segment: int) -> Iterator[list[Item]]:
        params = dict(plan.params)
        if plan.operation == "Scan" and plan.total_segments > 1:
            params.update(Segment=segment, TotalSegments=plan.total_segments)
        while not stop.is_set():
            with aws_errors():
                page = call(**params)
            if on_page is not None:
                on_page(int(page.get("ScannedCount", 0)))
            yield page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    if len(plan.segments) == 1:
        yield from pages(plan.segments[0])
        return

    # At most one page waiting per two segments (and each worker holds one page while it
    # waits): memory stays bounded by the segment count, not the table size.
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, len(plan.segments) // 2))
    _done = object()

    def worker(segment: int) -> None:
        try:
            for items in pages(segment):
                _put(q, ("items", items), stop)
        except BaseException as exc:
            _put(q, ("error", exc), stop)
        finally:
            _put(q, ("done", _done), stop)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in plan.segments]
    for t in threads:
        t.start()
    remaining = len(threads)
    try:
        while remaining:
            kind, payload = q.get()
            if kind == "items":
                yield payload
            elif kind == "error":
                raise payload
            else:
                remaining -= 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)


def _put(q: queue.Queue[tuple[str, Any]], entry: tuple[str, Any], stop: threading.Event) -> None:
    while True:
        try:
            q.put(entry, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


def fetch_items(aws: Aws, info: TableInfo, keys: Sequence[Item]) -> Iterator[Item]:
    """BatchGetItem, 100 keys a call, unprocessed keys retried. Missing keys are skipped."""
    client = aws.client("dynamodb")
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {info.name: {"Keys": list(keys[start:start + 100])}}
        delay = 0.05
        while request:
            with aws_errors():
                resp = client.batch_get_item(RequestItems=request)
            yield from resp.get("Responses", {}).get(info.name, [])
            request = resp.get("UnprocessedKeys") or {}
            if request:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def select(aws: Aws, info: TableInfo, settings: Settings, sel: Selection, *,
           stop: threading.Event | None = None, on_page: ProgressFn | None = None,
           now: float | None = None, plan: ScanPlan | None = None) -> Iterator[Record]:
    """Records matching the selection, streamed (stops reading at --limit). ``plan``:
    read these segments of the selection's plan (a worker of streamq.parallel)."""
    plan = plan or plan_scan(info, settings, sel)
    classifier = Classifier(settings, info, now, retry=needs_retry(sel))
    wanted = set(sel.statuses)
    stop = stop or threading.Event()
    pages = iter_pages(aws, plan, stop=stop, on_page=on_page)
    index = next((ix for ix in info.indexes if ix.name == plan.index), None)
    rehydrate = index is not None and _missing(index, info, _classify_attrs(info, settings))

    def candidates() -> Generator[Record, None, None]:
        if sel.observe is None and not rehydrate:
            # Page by page: only the records the selection wants are built.
            for page in pages:
                yield from classifier.selected(page, wanted)
            return
        # Every record is observed (or re-read from the table first): item by item, so
        # an observer sees exactly the records read up to the limit.
        items: Iterable[Item] = (item for page in pages for item in page)
        if rehydrate:
            items = _rehydrate(aws, info, items)
        for item in items:
            rec = classifier.classify(item)
            if sel.observe is not None:
                sel.observe(rec)
            if rec.selected_by(wanted):
                yield rec

    found = candidates()
    count = 0
    try:
        for rec in found:
            if sel.older_than is not None and (
                    rec.age_seconds is not None and rec.age_seconds < sel.older_than):
                continue
            yield rec
            count += 1
            if sel.limit is not None and count >= sel.limit:
                return
    finally:
        stop.set()
        found.close()
        pages.close()


def _rehydrate(aws: Aws, info: TableInfo, items: Iterable[Item]) -> Iterator[Item]:
    batch: list[Item] = []
    for item in items:
        batch.append(key_of(item, info))
        if len(batch) == 100:
            yield from fetch_items(aws, info, batch)
            batch = []
    if batch:
        yield from fetch_items(aws, info, batch)


def get_item(aws: Aws, info: TableInfo, key: Item) -> Item:
    with aws_errors():
        resp = aws.client("dynamodb").get_item(TableName=info.name, Key=key, ConsistentRead=True)
    if "Item" not in resp:
        raise NotFound(f"no item with key {key_text(key, info)} in table {info.name!r}")
    return dict(resp["Item"])


def sort_records(records: Iterable[Record], order: str, limit: int | None) -> list[Record]:
    """``age``: youngest first; ``-age``: oldest first. Unknown ages count as oldest."""
    if order not in ("age", "-age"):
        raise BadInput(f"invalid --sort {order!r}: use age or -age")

    def age(r: Record) -> float:
        return math.inf if r.age_seconds is None else r.age_seconds

    if order == "age":
        return (heapq.nsmallest(limit, records, key=age) if limit is not None
                else sorted(records, key=age))
    return (heapq.nlargest(limit, records, key=age) if limit is not None
            else sorted(records, key=age, reverse=True))


# --------------------------------------------------------------------------- stats


AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<5m", 300), ("5m-1h", 3600), ("1h-6h", 21600), ("6h-24h", 86400), (">24h", math.inf))


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    total: int = 0
    oldest_age: float | None = None
    oldest_key: Item | None = None
    unknown_age: int = 0
    histogram: dict[str, int] = field(default_factory=lambda: {b: 0 for b, _ in AGE_BUCKETS})
    retry: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRY_STATUSES, 0))
    next_due_at: float | None = None  # the earliest time a waiting record becomes due
    next_due_key: Item | None = None
    now: float = field(default_factory=time.time)

    def add(self, rec: Record) -> None:
        self.total += 1
        self.counts[rec.status] += 1
        if rec.retry is not None:
            self.retry[rec.retry] += 1
            if rec.retry == "waiting" and rec.next_due_at is not None and (
                    self.next_due_at is None or rec.next_due_at < self.next_due_at):
                self.next_due_at, self.next_due_key = rec.next_due_at, rec.key
        if rec.age_seconds is None:
            self.unknown_age += 1
            return
        if self.oldest_age is None or rec.age_seconds > self.oldest_age:
            self.oldest_age, self.oldest_key = rec.age_seconds, rec.key
        for name, upper in AGE_BUCKETS:
            if rec.age_seconds < upper:
                self.histogram[name] += 1
                break

    def merge(self, other: Stats) -> None:
        """Add another share of the same scan (a worker's, streamq.parallel)."""
        self.total += other.total
        self.unknown_age += other.unknown_age
        for name, n in other.counts.items():
            self.counts[name] += n
        for name, n in other.histogram.items():
            self.histogram[name] += n
        for name, n in other.retry.items():
            self.retry[name] += n
        if other.oldest_age is not None and (self.oldest_age is None
                                             or other.oldest_age > self.oldest_age):
            self.oldest_age, self.oldest_key = other.oldest_age, other.oldest_key
        if other.next_due_at is not None and (self.next_due_at is None
                                              or other.next_due_at < self.next_due_at):
            self.next_due_at, self.next_due_key = other.next_due_at, other.next_due_key

    def to_json(self, info: TableInfo) -> dict[str, Any]:
        return {
            "table": info.name,
            "total": self.total,
            "counts": self.counts,
            "oldest_age_seconds": None if self.oldest_age is None else round(self.oldest_age, 3),
            "oldest_key": None if self.oldest_key is None else key_plain(self.oldest_key, info),
            "unknown_age": self.unknown_age,
            "age_histogram": self.histogram,
            "retry": {
                **self.retry,
                "next_due_at": None if self.next_due_at is None else iso(self.next_due_at),
                "next_due_in_seconds": (None if self.next_due_at is None else
                                        round(max(0.0, self.next_due_at - self.now), 3)),
                "next_due_key": (None if self.next_due_key is None else
                                 key_plain(self.next_due_key, info)),
            },
        }
