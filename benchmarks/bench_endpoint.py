#!/usr/bin/env python3
"""A DynamoDB endpoint for benchmarks: a synthetic outbox of N mail-sized items served from
memory, with AWS's page rule and a configurable delay per request, at almost no cost per page.

moto hides the client's cost (its Scan re-walks the table for every page); this endpoint is
the opposite: every page is joined from pre-built byte fragments (no JSON encoding, no
per-item Python work on the hot path), so what a benchmark measures is the client.

    python benchmarks/bench_endpoint.py --items 100000 [--delay-ms 10] [--port 0]

prints ``PORT <n>`` once it listens on 127.0.0.1 (loopback only) and serves until killed.

What it speaks (the DynamoDB JSON protocol, ``X-Amz-Target: DynamoDB_20120810.<Op>``; no
signature check, any credentials work):

- ``DescribeTable``: key schema, ``ItemCount``, ``TableSizeBytes`` (the sum of the item sizes
  below), a stream, and two GSIs: ``by_error`` (hash ``last_error``, ALL: sparse, failed
  records only) and ``by_tenant`` (hash ``tenant``, range ``created_at``, INCLUDE
  ``last_error``, ``attempts``, ``refire_count``).
- ``Scan`` (table or index) with ``Segment``/``TotalSegments``, ``ExclusiveStartKey``,
  ``Limit``, ``Select`` (``COUNT`` too), ``ProjectionExpression`` (top-level names and
  ``#placeholders``; no nested paths) and ``FilterExpression``.
- ``Query`` on the table or an index: a ``KeyConditionExpression`` of equality on the hash
  key (``#k = :v``), with the same projection, filter, paging and limit. Items come back in
  table order, not sorted by the range key (streamq does not depend on the order).
- ``GetItem`` and ``BatchGetItem`` (with ``ProjectionExpression``).
- Anything else: ``400 UnknownOperationException``; an expression it cannot evaluate:
  ``400 ValidationException`` naming what is unsupported.

Pages follow AWS's rule: "A single Scan operation first reads up to the maximum number of
items set (if using the Limit parameter) or a maximum of 1 MB of data and then applies any
filtering to the results" (DynamoDB API Reference, API_Scan; the same for Query). The 1 MB
is of items *read*, measured with AWS's item-size rules (names + values: UTF-8 bytes for
strings, about one byte per two digits plus one for numbers, 3 bytes per list/map plus one
per element; Developer Guide, "DynamoDB item sizes and formats"), so a projection makes a
page smaller on the wire, not longer in items, and a filter leaves fewer items per page.
Segment *s* of *T* is the *s*-th of *T* contiguous ranges of the table (AWS splits the
hash-key space the same way); ``LastEvaluatedKey`` is the key of the last item read when
the segment has more.

FilterExpression support: ``AND``/``OR``/``NOT``, parentheses, ``= <> < <= > >=``,
``BETWEEN``, ``IN``, ``attribute_exists``, ``attribute_not_exists``, ``attribute_type``,
``begins_with``, ``contains`` and ``size`` on top-level attributes (every expression
streamq builds). A filter is evaluated once over the whole table when first seen (seconds
for 1M items), then cached: later pages with the same filter cost a mask lookup. A
comparison with a missing attribute, or of two different types, is false.

Every response carries ``x-amz-crc32`` as AWS's does (botocore verifies it). The
delay is added to every request (sleeping, so concurrent requests overlap as network round
trips do); change it at run time with ``POST /__bench/config`` ``{"delay_ms": 10}``.
``GET /__bench/stats`` returns the request counters. ``--processes K`` forks K-1 more
serving processes on the same socket after the data is built (shared copy-on-write).

Importable: :class:`Outbox` (the data set, with :meth:`Outbox.status` and
:meth:`Outbox.key` so a benchmark can compute the exact expected output) and
:func:`serve`.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TABLE = "bench_outbox"
PAGE_BYTES = 1_048_576  # AWS: at most 1 MB of data read per Scan/Query page
KEY = "id"
STATUSES = ("failed", "stuck", "pending")
STUCK_AGE = 2 * 86400  # stuck records are 2 days old (and older): pass --stuck-after 1d
FAILED_AGE = 3 * 3600

AV = dict[str, Any]
Item = dict[str, AV]

# --------------------------------------------------------------------------- the data

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
ERRORS = ("550 mailbox unavailable", "429 Too Many Requests",
          "503 Service Unavailable: upstream timed out after 30000 ms",
          "421 try again later (rate limited)")
SUBJECTS = (
    "Your order has shipped", "Weekly digest", "Password reset requested",
    "Invoice INV-2026-0042 is due", "Welcome aboard!", "Réunion de lundi : ordre du jour",
    "Your monthly statement is ready", "Action required: confirm your e-mail address",
    "Ihre Bestellung wurde versandt", "New sign-in from Firefox on Linux",
    "注文の確認", "Reminder: your trial ends in 3 days", "Security alert",
    "Your ticket #48213 was updated", "Receipt for your payment", "Team offsite — logistics",
)
_TEXT = ("the quick brown fox jumps over the lazy dog while our servers deliver your message "
         "with care and a little bit of luck so please do not reply to this automated notice "
         "because nobody reads the mailbox it comes from")
_WORDS = tuple(_TEXT.split(" "))


def _body(k: int) -> str:
    words = [_WORDS[(k * 7 + j * 3) % len(_WORDS)] for j in range(40 + (k * 13) % 40)]
    text = " ".join(words)
    greeting = ("Hello", "Hi", "Bonjour", "Grüß Gott", "こんにちは")[k % 5]
    return f"{greeting} {{name}},\n\n{text.capitalize()}.\n\n— The Example Team"


BODIES = tuple(_body(k) for k in range(32))


def iso(ts: float) -> str:
    return (datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def number_size(text: str) -> int:
    """AWS: about one byte per two significant digits, plus one."""
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def av_size(av: AV) -> int:
    (kind, value), = av.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        return number_size(value)
    if kind == "B":
        return len(base64.b64decode(value))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in value)
    if kind == "NS":
        return sum(number_size(v) for v in value)
    if kind == "BS":
        return sum(len(base64.b64decode(v)) for v in value)
    if kind == "L":
        return 3 + sum(1 + av_size(v) for v in value)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + av_size(v) for k, v in value.items())
    raise ValueError(kind)


def item_size(item: Item) -> int:
    """DynamoDB's item size: names plus values (Developer Guide, item sizes and formats)."""
    return sum(len(name.encode()) + av_size(av) for name, av in item.items())


_SAFE = re.compile(r'[\x00-\x1f"\\\x7f]')


def _json_str(text: str) -> str:
    if text.isascii() and not _SAFE.search(text):
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


def encode_av(av: AV) -> str:
    (kind, value), = av.items()
    if kind in ("S", "N", "B"):
        return f'{{"{kind}":{_json_str(value)}}}'
    return json.dumps(av, ensure_ascii=False, separators=(",", ":"))


class Outbox:
    """The synthetic outbox: item ``i`` is a pure function of ``i`` and ``epoch``.

    Of every 20 items, 3 are failed (an error, 3 h old), 1 is stuck (no error, 2 days
    old) and 16 pending (no error, created at ``epoch``, the server's start), so any
    ``--stuck-after`` between the server's lifetime and 2 days classifies exactly."""

    def __init__(self, n: int, epoch: float | None = None) -> None:
        self.n = n
        self.epoch = time.time() if epoch is None else epoch
        self._pooled: dict[tuple[str, str], bytes] = {}

    @staticmethod
    def status(i: int) -> str:
        r = i % 20
        return "failed" if r in (1, 8, 15) else "stuck" if r == 3 else "pending"

    @staticmethod
    def key(i: int) -> str:
        return f"msg-{i:07d}"

    @staticmethod
    def position(key: str) -> int | None:
        if len(key) == 11 and key.startswith("msg-") and key[4:].isdigit():
            return int(key[4:])
        return None

    def item(self, i: int) -> Item:
        """Item ``i`` in DynamoDB's low-level JSON form (attribute order as served)."""
        status = self.status(i)
        age = (FAILED_AGE + i % 3600 if status == "failed" else
               STUCK_AGE + i % 3600 if status == "stuck" else 0)
        item: Item = {
            KEY: {"S": self.key(i)},
            "tenant": {"S": TENANTS[i % len(TENANTS)]},
            "recipient": {"S": f"user{i}@example.com"},
            "created_at": {"S": iso(self.epoch - age)},
            "attempts": {"N": str(1 + i % 5 if status == "failed" else 0)},
        }
        if status == "failed":
            item["last_error"] = {"S": ERRORS[i % len(ERRORS)]}
            item["last_attempt_at"] = {"S": iso(self.epoch - age + 60)}
            if i % 3 == 0:
                item["refire_count"] = {"N": str(i % 4)}
        item["subject"] = {"S": SUBJECTS[i % len(SUBJECTS)]}
        item["body"] = {"S": BODIES[i % len(BODIES)]}
        return item

    def expected(self, statuses: Iterable[str]) -> set[str]:
        want = set(statuses)
        return {self.key(i) for i in range(self.n) if self.status(i) in want}

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        full, rest = divmod(self.n, 20)
        for r in range(20):
            out[self.status(r)] += full + (1 if r < rest else 0)
        return out

    # ------------------------------------------------------------------- fragments

    def fragment(self, name: str, av: AV) -> bytes:
        """``"name":{...}`` as bytes; values from the pools are shared objects."""
        if name in ("subject", "body", "tenant", "last_error"):
            k = (name, av["S"])
            frag = self._pooled.get(k)
            if frag is None:
                frag = self._pooled[k] = f'"{name}":{encode_av(av)}'.encode()
            return frag
        return f'"{name}":{encode_av(av)}'.encode()


# --------------------------------------------------------------------------- expressions


class Unsupported(ValueError):
    """An expression this endpoint cannot evaluate: a 400 ValidationException."""


_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<ph>[#:][A-Za-z0-9_]+)|(?P<op><>|<=|>=|[=<>(),])"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot parse expression at {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


_MISSING = object()


class Expr:
    """A parsed FilterExpression / condition, evaluated on low-level items."""

    FUNCS = ("attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
             "contains")

    def __init__(self, text: str, names: dict[str, str], values: dict[str, AV]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.names, self.values = names, values
        self.fn = self._or()
        if self.i != len(self.toks):
            raise Unsupported(f"unexpected {self.toks[self.i][1]!r} in expression")

    def __call__(self, item: Item) -> bool:
        return bool(self.fn(item))

    # parsing
    def _peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def _take(self, want: str | None = None) -> str:
        if self.i >= len(self.toks):
            raise Unsupported("expression ends too early")
        tok = self.toks[self.i][1]
        if want is not None and tok.upper() != want:
            raise Unsupported(f"expected {want}, got {tok!r}")
        self.i += 1
        return tok

    def _or(self) -> Callable[[Item], bool]:
        terms = [self._and()]
        while self._peek().upper() == "OR":
            self._take()
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else lambda it: any(t(it) for t in terms)

    def _and(self) -> Callable[[Item], bool]:
        terms = [self._not()]
        while self._peek().upper() == "AND":
            self._take()
            terms.append(self._not())
        return terms[0] if len(terms) == 1 else lambda it: all(t(it) for t in terms)

    def _not(self) -> Callable[[Item], bool]:
        if self._peek().upper() == "NOT":
            self._take()
            inner = self._not()
            return lambda it: not inner(it)
        return self._primary()

    def _primary(self) -> Callable[[Item], bool]:
        tok = self._peek()
        if tok == "(":
            self._take()
            inner = self._or()
            self._take(")")
            return inner
        if tok.lower() in self.FUNCS:
            return self._function()
        left = self._operand()
        op = self._take()
        if op.upper() == "BETWEEN":
            lo = self._operand()
            self._take("AND")
            hi = self._operand()
            return lambda it: (_cmp(left(it), lo(it), ">=") and _cmp(left(it), hi(it), "<="))
        if op.upper() == "IN":
            self._take("(")
            options = [self._operand()]
            while self._peek() == ",":
                self._take()
                options.append(self._operand())
            self._take(")")
            return lambda it: any(_cmp(left(it), o(it), "=") for o in options)
        if op not in ("=", "<>", "<", "<=", ">", ">="):
            raise Unsupported(f"unsupported operator {op!r}")
        right = self._operand()
        return lambda it: _cmp(left(it), right(it), op)

    def _path(self) -> str:
        tok = self._take()
        if tok.startswith("#"):
            if tok not in self.names:
                raise Unsupported(f"undefined attribute name placeholder {tok}")
            name = self.names[tok]
        elif tok.startswith(":") or tok in "(),=<>":
            raise Unsupported(f"expected an attribute name, got {tok!r}")
        else:
            name = tok
        if self._peek() in (".", "["):
            raise Unsupported("nested attribute paths are not supported")
        return name

    def _operand(self) -> Callable[[Item], Any]:
        tok = self._peek()
        if tok.startswith(":"):
            self._take()
            if tok not in self.values:
                raise Unsupported(f"undefined attribute value placeholder {tok}")
            value = self.values[tok]
            return lambda it: value
        if tok.lower() == "size":
            self._take()
            self._take("(")
            name = self._path()
            self._take(")")
            return lambda it: _size_of(it.get(name, _MISSING))
        name = self._path()
        return lambda it: it.get(name, _MISSING)

    def _function(self) -> Callable[[Item], bool]:
        fn = self._take().lower()
        self._take("(")
        name = self._path()
        arg: Callable[[Item], Any] | None = None
        if fn in ("attribute_type", "begins_with", "contains"):
            self._take(",")
            arg = self._operand()
        self._take(")")
        if fn == "attribute_exists":
            return lambda it: name in it
        if fn == "attribute_not_exists":
            return lambda it: name not in it
        assert arg is not None
        if fn == "attribute_type":
            return lambda it: name in it and next(iter(it[name])) == arg(it).get("S")
        if fn == "begins_with":
            return lambda it: _begins(it.get(name, _MISSING), arg(it))
        return lambda it: _contains(it.get(name, _MISSING), arg(it))


def _scalar(av: Any) -> tuple[str, Any] | None:
    if av is _MISSING or not isinstance(av, dict) or len(av) != 1:
        return None
    (kind, value), = av.items()
    if kind == "N":
        try:
            return kind, Decimal(value)
        except InvalidOperation:
            return None
    return kind, value


def _cmp(a: Any, b: Any, op: str) -> bool:
    x, y = _scalar(a), _scalar(b)
    if x is None or y is None:
        return False
    if x[0] != y[0]:
        return op == "<>"
    u, v = x[1], y[1]
    if op == "=":
        return bool(u == v)
    if op == "<>":
        return bool(u != v)
    if x[0] not in ("S", "N", "B"):
        return False
    return bool({"<": u < v, "<=": u <= v, ">": u > v, ">=": u >= v}[op])


def _size_of(av: Any) -> AV | Any:
    if av is _MISSING:
        return _MISSING
    (kind, value), = av.items()
    if kind == "S":
        return {"N": str(len(value.encode()))}
    if kind == "B":
        return {"N": str(len(base64.b64decode(value)))}
    if kind in ("SS", "NS", "BS", "L", "M"):
        return {"N": str(len(value))}
    return _MISSING


def _begins(av: Any, prefix: AV) -> bool:
    x, y = _scalar(av), _scalar(prefix)
    return (x is not None and y is not None and x[0] == y[0] and x[0] in ("S", "B")
            and str(x[1]).startswith(str(y[1])))


def _contains(av: Any, needle: AV) -> bool:
    if av is _MISSING:
        return False
    (kind, value), = av.items()
    (nkind, nvalue), = needle.items()
    if kind == "S":
        return nkind == "S" and nvalue in value
    if kind in ("SS", "NS", "BS"):
        return nkind == kind[0] and nvalue in value
    if kind == "L":
        return any(_cmp(v, needle, "=") for v in value)
    return False


def parse_projection(text: str, names: dict[str, str]) -> tuple[str, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise Unsupported("empty name in ProjectionExpression")
        if "." in part or "[" in part:
            raise Unsupported("nested paths in ProjectionExpression are not supported")
        if part.startswith("#"):
            if part not in names:
                raise Unsupported(f"undefined attribute name placeholder {part}")
            part = names[part]
        out.append(part)
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------- views


class View:
    """A table or an index: which table positions it holds (ascending), their sizes as
    read (the index's projection), and the attributes it projects (None: all)."""

    def __init__(self, name: str | None, positions: Sequence[int] | None, sizes: list[int],
                 attrs: frozenset[str] | None, key_attrs: tuple[str, ...]) -> None:
        self.name = name
        self.positions = positions  # None: every item, position == view index
        self.cum = list(itertools.accumulate(sizes, initial=0))
        self.attrs = attrs
        self.key_attrs = key_attrs  # for LastEvaluatedKey: table key + index keys

    def __len__(self) -> int:
        return len(self.cum) - 1

    def position(self, k: int) -> int:
        return k if self.positions is None else self.positions[k]

    def after(self, pos: int) -> int:
        """The view index just after table position ``pos``."""
        if self.positions is None:
            return pos + 1
        return bisect.bisect_right(self.positions, pos)

    def page_end(self, start: int, stop: int, limit: int | None, page_bytes: int) -> int:
        end = bisect.bisect_right(self.cum, self.cum[start] + page_bytes, start + 1, stop + 1) - 1
        end = max(end, start + 1)  # an item larger than the page limit is still read
        if limit is not None:
            end = min(end, start + limit)
        return min(end, stop)


INDEXES: dict[str, dict[str, Any]] = {
    "by_error": {"hash": "last_error", "range": None, "projection": "ALL", "include": ()},
    "by_tenant": {"hash": "tenant", "range": "created_at", "projection": "INCLUDE",
                  "include": ("last_error", "attempts", "refire_count")},
}


class Store:
    """The outbox plus what makes pages cheap: per projection a list of pre-encoded item
    fragments (built once, on first use), views, and cached filter masks."""

    def __init__(self, outbox: Outbox, page_bytes: int = PAGE_BYTES) -> None:
        self.box = outbox
        self.page_bytes = page_bytes
        self.lock = threading.Lock()
        self._frags: dict[frozenset[str] | None, list[bytes]] = {}
        self._masks: dict[tuple[Any, ...], bytearray] = {}
        self._queries: dict[tuple[str, str], View] = {}
        started = time.perf_counter()
        sizes, sparse, sparse_sizes, tenant_sizes = [], [], [], []
        self.tenant_of: list[int] = []
        inc = {KEY, "tenant", "created_at", *INDEXES["by_tenant"]["include"]}
        for i in range(outbox.n):
            item = outbox.item(i)
            sizes.append(item_size(item))
            if "last_error" in item:
                sparse.append(i)
                sparse_sizes.append(sizes[-1])
            tenant_sizes.append(item_size({k: v for k, v in item.items() if k in inc}))
        self.table = View(None, None, sizes, None, (KEY,))
        self.indexes = {
            "by_error": View("by_error", sparse, sparse_sizes, None, (KEY, "last_error")),
            "by_tenant": View("by_tenant", range(outbox.n), tenant_sizes, frozenset(inc),
                              (KEY, "tenant", "created_at")),
        }
        self.size_bytes = self.table.cum[-1]
        self.fragments(None)  # the full items, always needed
        self.build_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ fragments

    def fragments(self, attrs: frozenset[str] | None) -> list[bytes]:
        """Each item as ``,{...}`` (leading comma: pages strip the first one)."""
        frags = self._frags.get(attrs)
        if frags is not None:
            return frags
        with self.lock:
            frags = self._frags.get(attrs)
            if frags is None:
                started = time.perf_counter()
                box = self.box
                frags = []
                for i in range(box.n):
                    item = box.item(i)
                    parts = [box.fragment(k, v) for k, v in item.items()
                             if attrs is None or k in attrs]
                    frags.append(b",{" + b",".join(parts) + b"}")
                self._frags[attrs] = frags
                log(f"built {len(frags):,} fragments for projection "
                    f"{sorted(attrs) if attrs is not None else 'ALL'} in "
                    f"{time.perf_counter() - started:.1f}s")
        return frags

    def mask(self, view: View, expr_key: tuple[Any, ...], expr: Expr) -> bytearray:
        key = (view.name, *expr_key)
        m = self._masks.get(key)
        if m is None:
            with self.lock:
                m = self._masks.get(key)
                if m is None:
                    started = time.perf_counter()
                    box = self.box
                    m = bytearray(len(view))
                    for k in range(len(view)):
                        item = box.item(view.position(k))
                        if view.attrs is not None:
                            item = {a: v for a, v in item.items() if a in view.attrs}
                        m[k] = expr(item)
                    self._masks[key] = m
                    log(f"evaluated a filter over {len(view):,} items in "
                        f"{time.perf_counter() - started:.1f}s ({sum(m):,} match)")
        return m

    def query_view(self, index: str | None, name: str, value: AV) -> View:
        """The items whose ``name`` equals ``value`` (a Query's key condition)."""
        key = (index or "", json.dumps([name, value], sort_keys=True))
        view = self._queries.get(key)
        if view is None:
            with self.lock:
                base = self.indexes[index] if index else self.table
                positions, sizes = [], []
                for k in range(len(base)):
                    pos = base.position(k)
                    if _cmp(self.box.item(pos).get(name, _MISSING), value, "="):
                        positions.append(pos)
                        sizes.append(base.cum[k + 1] - base.cum[k])
                view = View(base.name, positions, sizes, base.attrs, base.key_attrs)
                self._queries[key] = view
        return view

    # ------------------------------------------------------------------ operations

    def describe(self) -> dict[str, Any]:
        box = self.box
        gsis = []
        for name, spec in INDEXES.items():
            view = self.indexes[name]
            schema = [{"AttributeName": spec["hash"], "KeyType": "HASH"}]
            if spec["range"]:
                schema.append({"AttributeName": spec["range"], "KeyType": "RANGE"})
            proj: dict[str, Any] = {"ProjectionType": spec["projection"]}
            if spec["include"]:
                proj["NonKeyAttributes"] = list(spec["include"])
            gsis.append({"IndexName": name, "KeySchema": schema, "Projection": proj,
                         "IndexStatus": "ACTIVE", "ItemCount": len(view),
                         "IndexSizeBytes": view.cum[-1],
                         "IndexArn": f"{self.arn}/index/{name}"})
        return {"Table": {
            "TableName": TABLE, "TableStatus": "ACTIVE", "TableArn": self.arn,
            "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                     for a in (KEY, "last_error", "tenant", "created_at")],
            "ItemCount": box.n, "TableSizeBytes": self.size_bytes,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "StreamSpecification": {"StreamEnabled": True,
                                    "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "LatestStreamArn": f"{self.arn}/stream/2026-01-01T00:00:00.000",
            "LatestStreamLabel": "2026-01-01T00:00:00.000",
            "CreationDateTime": box.epoch - 86400 * 30,
            "GlobalSecondaryIndexes": gsis,
        }}

    @property
    def arn(self) -> str:
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"

    def _projection(self, req: dict[str, Any], view: View) -> frozenset[str] | None:
        names = req.get("ExpressionAttributeNames") or {}
        text = req.get("ProjectionExpression")
        if req.get("AttributesToGet"):
            raise Unsupported("AttributesToGet (legacy) is not supported")
        wanted = frozenset(parse_projection(text, names)) if text else None
        if view.attrs is None:
            return wanted
        return view.attrs if wanted is None else wanted & view.attrs

    def _filter(self, req: dict[str, Any]) -> tuple[tuple[Any, ...], Expr] | None:
        text = req.get("FilterExpression")
        if req.get("ScanFilter") or req.get("QueryFilter"):
            raise Unsupported("ScanFilter/QueryFilter (legacy) are not supported")
        if not text:
            return None
        names = req.get("ExpressionAttributeNames") or {}
        values = req.get("ExpressionAttributeValues") or {}
        expr = Expr(text, names, values)
        key = (text, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))
        return key, expr

    def _key_of(self, pos: int, view: View) -> dict[str, AV]:
        item = self.box.item(pos)
        return {a: item[a] for a in view.key_attrs if a in item}

    def read(self, req: dict[str, Any], query: bool) -> bytes:
        if req.get("TableName") not in (TABLE, self.arn):
            raise NotFoundError("Requested resource not found")
        index = req.get("IndexName")
        if index is not None and index not in self.indexes:
            raise Invalid(f"The table does not have the specified index: {index}")
        view = self.indexes[index] if index else self.table
        if query:
            view = self._query_view(req, index)
        n = len(view)
        segment, total = req.get("Segment"), req.get("TotalSegments")
        if (segment is None) != (total is None):
            raise Invalid("Segment and TotalSegments must be given together")
        if query and total is not None:
            raise Invalid("Query does not take Segment/TotalSegments")
        seg_lo, seg_hi = 0, n
        if total is not None:
            if not (1 <= int(total) <= 1_000_000 and 0 <= int(segment) < int(total)):
                raise Invalid("Segment must be >= 0 and < TotalSegments <= 1000000")
            seg_lo, seg_hi = int(segment) * n // int(total), (int(segment) + 1) * n // int(total)
        start = seg_lo
        esk = req.get("ExclusiveStartKey")
        if esk:
            pos = Outbox.position(str((esk.get(KEY) or {}).get("S", "")))
            if pos is None:
                raise Invalid("The provided starting key is invalid")
            start = max(seg_lo, view.after(pos))
        limit = req.get("Limit")
        if limit is not None and int(limit) < 1:
            raise Invalid("Limit must be >= 1")
        end = (view.page_end(start, seg_hi, None if limit is None else int(limit),
                             self.page_bytes) if start < seg_hi else start)
        attrs = self._projection(req, view)
        flt = self._filter(req)
        select = req.get("Select", "ALL_ATTRIBUTES")
        scanned = end - start
        if flt is None:
            count = scanned
            chosen: Iterable[int] | None = None
        else:
            mask = self.mask(view, *flt)
            chosen = list(itertools.compress(range(start, end), mask[start:end]))
            count = len(chosen)
        parts: list[bytes] = []
        if select != "COUNT" and count:
            frags = self.fragments(attrs)
            if chosen is None and view.positions is None:
                parts = frags[start:end]
            else:
                ks = range(start, end) if chosen is None else chosen
                parts = [frags[view.position(k)] for k in ks]
            parts[0] = parts[0][1:]
        tail = f'],"Count":{count},"ScannedCount":{scanned}'
        if end < seg_hi:
            lek = self._key_of(view.position(end - 1), view)
            tail += ',"LastEvaluatedKey":' + json.dumps(lek, separators=(",", ":"),
                                                        ensure_ascii=False)
        if select == "COUNT":
            return (tail[2:].join("{}")).encode()
        parts.insert(0, b'{"Items":[')
        parts.append(tail.encode() + b"}")
        return b"".join(parts)

    def _query_view(self, req: dict[str, Any], index: str | None) -> View:
        cond = req.get("KeyConditionExpression")
        if not cond:
            raise Invalid("Query needs a KeyConditionExpression (KeyConditions is legacy, "
                          "not supported)")
        names = req.get("ExpressionAttributeNames") or {}
        values = req.get("ExpressionAttributeValues") or {}
        m = re.fullmatch(r"\s*([#A-Za-z_][A-Za-z0-9_]*)\s*=\s*(:[A-Za-z0-9_]+)\s*", cond)
        if not m:
            raise Unsupported("only a KeyConditionExpression of equality on the hash key "
                              "(#k = :v) is supported")
        name = names.get(m.group(1), m.group(1)) if m.group(1).startswith("#") else m.group(1)
        hash_key = INDEXES[index]["hash"] if index else KEY
        if name != hash_key:
            raise Invalid(f"Query condition missed key schema element: {hash_key}")
        if m.group(2) not in values:
            raise Invalid(f"undefined attribute value placeholder {m.group(2)}")
        return self.query_view(index, name, values[m.group(2)])

    def get(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("TableName") not in (TABLE, self.arn):
            raise NotFoundError("Requested resource not found")
        item = self._lookup(req.get("Key") or {}, req)
        return {} if item is None else {"Item": item}

    def _lookup(self, key: dict[str, Any], req: dict[str, Any]) -> Item | None:
        if set(key) != {KEY} or "S" not in key[KEY]:
            raise Invalid("The provided key element does not match the schema")
        pos = Outbox.position(key[KEY]["S"])
        if pos is None or pos >= self.box.n:
            return None
        item = self.box.item(pos)
        attrs = self._projection(req, self.table)
        return item if attrs is None else {k: v for k, v in item.items() if k in attrs}

    def batch_get(self, req: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Item]] = {}
        for table, spec in (req.get("RequestItems") or {}).items():
            if table != TABLE:
                raise NotFoundError("Requested resource not found")
            keys = spec.get("Keys") or []
            if len(keys) > 100:
                raise Invalid("Too many items requested for the BatchGetItem call")
            found = [self._lookup(k, spec) for k in keys]
            out[table] = [it for it in found if it is not None]
        return {"Responses": out, "UnprocessedKeys": {}}


class NotFoundError(Exception):
    code = "ResourceNotFoundException"


class Invalid(Exception):
    code = "ValidationException"


# --------------------------------------------------------------------------- HTTP


def log(msg: str) -> None:
    print(f"[bench_endpoint {os.getpid()}] {msg}", file=sys.stderr, flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    store: Store
    delay: float
    crc: bool
    counters: dict[str, int]

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write; no Nagle stall between requests.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/x-amz-json-1.0"
               ) -> None:
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}",
                f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                f"x-amzn-RequestId: bench-{time.monotonic_ns()}"]
        if self.server.crc:
            head.append(f"x-amz-crc32: {zlib.crc32(body) & 0xFFFFFFFF}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _error(self, code: str, message: str, status: int = 400) -> None:
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                           "message": message}).encode()
        self._reply(status, body)

    def do_GET(self) -> None:
        if self.path == "/__bench/stats":
            self._reply(200, json.dumps(self.server.counters).encode(), "application/json")
        else:
            self._reply(404, b"{}", "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        if self.path.startswith("/__bench/config"):
            doc = json.loads(raw or b"{}")
            if "delay_ms" in doc:
                self.server.delay = max(0.0, float(doc["delay_ms"])) / 1000.0
            self._reply(200, json.dumps({"delay_ms": self.server.delay * 1000}).encode(),
                        "application/json")
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        target = self.headers.get("X-Amz-Target", "")
        op = target.rpartition(".")[2]
        counters = self.server.counters
        counters[op] = counters.get(op, 0) + 1
        store = self.server.store
        try:
            req = json.loads(raw)
            if op in ("Scan", "Query"):
                self._reply(200, store.read(req, op == "Query"))
                return
            if op == "DescribeTable":
                if req.get("TableName") not in (TABLE, store.arn):
                    raise NotFoundError(f"Requested resource not found: Table: "
                                        f"{req.get('TableName')} not found")
                doc = store.describe()
            elif op == "GetItem":
                doc = store.get(req)
            elif op == "BatchGetItem":
                doc = store.batch_get(req)
            else:
                self._error("UnknownOperationException",
                            f"the benchmark endpoint does not implement {op or target!r}")
                return
            self._reply(200, json.dumps(doc, ensure_ascii=False,
                                        separators=(",", ":")).encode())
        except (NotFoundError, Invalid) as exc:
            self._error(exc.code, str(exc))
        except Unsupported as exc:
            self._error("ValidationException", f"benchmark endpoint: {exc}")
        except (ValueError, TypeError, KeyError) as exc:
            self._error("SerializationException", f"bad request: {exc!r}")


def serve(n: int, *, port: int = 0, delay_ms: float = 0.0, page_bytes: int = PAGE_BYTES,
          crc: bool = True, processes: int = 1, epoch: float | None = None,
          ready: Callable[[int], None] | None = None) -> None:
    """Build the data, listen on 127.0.0.1:port and serve forever (in ``processes``
    processes sharing the socket); ``ready(port)`` is called once listening."""
    store = Store(Outbox(n, epoch), page_bytes)
    log(f"{n:,} items, {store.size_bytes / 1_048_576:,.1f} MiB as DynamoDB counts it, "
        f"built in {store.build_seconds:.1f}s")
    server = Server(("127.0.0.1", port), Handler)
    server.store, server.delay, server.crc, server.counters = store, delay_ms / 1000, crc, {}
    children = []
    for _ in range(max(1, processes) - 1):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a serving child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
            os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if ready is not None:
        ready(server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000, help="table size [100000]")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 [0: free]")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="added to every request [0]")
    ap.add_argument("--page-bytes", type=int, default=PAGE_BYTES,
                    help="data read per page [1048576: AWS's 1 MB]; smaller for tests")
    ap.add_argument("--no-crc", action="store_true", help="omit the x-amz-crc32 header")
    ap.add_argument("--processes", type=int, default=1, help="serving processes [1]")
    ap.add_argument("--epoch", type=float, default=None,
                    help="the data's clock (epoch seconds) [now]")
    args = ap.parse_args(argv)
    if args.items < 1 or args.page_bytes < 1:
        ap.error("--items and --page-bytes must be >= 1")

    def ready(port: int) -> None:
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()

    serve(args.items, port=args.port, delay_ms=args.delay_ms, page_bytes=args.page_bytes,
          crc=not args.no_crc, processes=args.processes, epoch=args.epoch,
          ready=ready)


if __name__ == "__main__":
    main()
