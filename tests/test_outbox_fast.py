"""The fast classification path of streamq.outbox gives exactly the old path's results.

- ``created_time(av)`` (the ISO case inlined) equals ``parse_timestamp(av)`` for every
  attribute value, including under a local time zone that is not UTC (a naive time is
  UTC to both; a slip to local time would show).
- ``Classifier.selected(page, wanted)`` returns exactly
  ``[r for r in map(classify, page) if r.selected_by(wanted)]`` (same order, equal
  fields, the same item objects) for every status selection, with and without retry state.
- ``select()`` against moto's server yields the same records on its page-by-page path
  (``observe=None``) as on its item-by-item path (an observer set), which sees every item.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from streamq.config import Settings
from streamq.outbox import (
    DEFAULT_STATUSES,
    SELECTABLE,
    Classifier,
    KeyAttr,
    Record,
    Selection,
    TableInfo,
    created_time,
    describe_table,
    key_id,
    parse_timestamp,
    select,
)
from streamq.retry import Backoff
from tests.helpers import batch_put, create_table

NOW = 1_795_000_000.0  # fixed: 2026-11-18T09:46:40Z, an integer so NOW - 300 is exact
UTC = timezone.utc


# --------------------------------------------------------------------------- values


@pytest.fixture()
def non_utc_local_zone() -> Iterator[None]:
    """Local time 5:30 ahead of UTC (a POSIX TZ string: no tz database needed), so that
    reading a naive time as local time instead of UTC changes the result."""
    import os

    if not hasattr(time, "tzset"):  # pragma: no cover (Windows)
        pytest.skip("time.tzset is Unix only")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "STQ-5:30"
    time.tzset()
    try:
        assert datetime(2026, 1, 1).timestamp() != datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


OFFSETS = ["", "Z", "z", "+00:00", "-00:00", "+0000", "+05:30", "-0800", "+0100", "-03",
           "+14:00", "-12:00", "+05:30:15", "+00:00:00.5", "+24:00", "+5:30", "UTC"]
SEPARATORS = ["T", " ", "t", "_"]
WRAPS = [("", ""), (" ", ""), ("", " "), ("", "\n"), ("\t", "\t"), ("", "\r\n"),
         ("\n", ""), ("", "\u00a0"), ("\u3000", "")]
GARBAGE_CHARS = "0123456789-:T.,Z+ xW\u00b2\u0662"


def _iso(rng: random.Random, ts: float) -> str:
    """One of the ISO-8601 spellings of (roughly) ``ts``."""
    dt = datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)
    basic = rng.random() < 0.2
    date = dt.strftime("%Y%m%d" if basic else "%Y-%m-%d")
    shape = rng.randrange(10)
    if shape == 0:
        return date
    if shape == 1:  # week date
        y, w, d = dt.isocalendar()
        return f"{y:04d}W{w:02d}{d}" if basic else rng.choice(
            [f"{y:04d}-W{w:02d}-{d}", f"{y:04d}-W{w:02d}"])
    if shape == 2:  # ordinal date
        return f"{dt.year:04d}-{dt.timetuple().tm_yday:03d}"
    time_part = rng.choice([
        f"{dt.hour:02d}", f"{dt.hour:02d}:{dt.minute:02d}",
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}",
        f"{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"])
    if (time_part.count(":") == 2 or len(time_part) == 6) and rng.random() < 0.7:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
        time_part += rng.choice(".,") + digits
    sep = "T" if rng.random() < 0.7 else rng.choice(SEPARATORS)
    return f"{date}{sep}{time_part}{rng.choice(OFFSETS)}"


def _number_text(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return str(rng.randint(0, 2_000_000_000))  # epoch seconds
    if kind == 1:
        return str(rng.randint(10**11, 2 * 10**12))  # epoch milliseconds
    if kind == 2:
        return str(-rng.randint(0, 10**13))  # negative
    if kind == 3:
        return repr(rng.uniform(-1e12, 1e12))  # float
    if kind == 4:
        return f"{rng.uniform(1, 9):.3f}e{rng.randint(-3, 30)}"  # exponent
    if kind == 5:
        return rng.choice(["inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-1e400",
                           "1_700_000_000", "\u0661\u0667\u0660\u0660\u0660\u0660\u0660"
                           "\u0660\u0660\u0660", "0x10", "1e11", "99999999999.9"])
    if kind == 6:
        return str(rng.randint(10**15, 10**30))  # huge
    return f"{rng.randint(0, 2_000_000_000)}.{rng.randint(0, 999999)}"


def _mangle(rng: random.Random, text: str) -> str:
    """Garbage derived from a valid form: a character replaced, or the text cut short."""
    if not text:
        return text
    if rng.random() < 0.5:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(GARBAGE_CHARS) + text[i + 1:]
    return text[:rng.randrange(len(text))]


EXPLICIT_STRINGS = [
    "2026-11-27T00:00:00Z", "2026-11-27T00:00:00+00:00", "2026-11-27T00:00:00",
    "2026-11-27T05:30:00+05:30", "2026-11-27T00:00:00-0800", "2026-11-27T00:00:00+0100",
    "2026-11-27T00:00:00.1Z", "2026-11-27T00:00:00.123456789Z", "2026-11-27T00:00:00,5Z",
    "2026-11-27", "20261127T000000Z", "20261127", "2026-W48-5", "2026W485", "2026-331",
    " 2026-11-27T00:00:00Z", "2026-11-27T00:00:00Z ", "2026-11-27T00:00:00Z\n",
    "\n2026-11-27T00:00:00\n", "2026-11-27T00:00:00z", "2026-11-27t00:00:00Z",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
    "2026-11-27T24:00:00Z", "2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z",
    "1700000000", "1700000000000", "-1700000000", "1.7e9", "1.7E12", " 1700000000 ",
    "1700000000\n", "inf", "-inf", "nan", "1e400", "1_700_000_000", "0", "-0", "+5",
    "abcd-ef", "2026-13-45", "2026-11-27T00:00:00ZZ", "2026-11-27T00:00:00+25:00", "",
    " ", "\n", "Z", "2026", "2026-", "2026-1", "-2026-11-27", "+2026-11-27",
    "\u00b2\u2070\u00b2\u2076-11-27", "\u0662\u0660\u0662\u0666-11-27",
    "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0667", "2026\u201011\u201027",
    "\uff12\uff10\uff12\uff16-11-27", "2026-11-27T00:00:00\u00a0", "2026-11-27T00:00:00\x1f",
]

OTHER_VALUES: list[dict[str, Any] | None] = [
    None, {}, {"NULL": True}, {"BOOL": True}, {"BOOL": False}, {"M": {}},
    {"M": {"S": {"S": "2026-11-27T00:00:00Z"}}}, {"L": []}, {"L": [{"S": "2026-11-27"}]},
    {"SS": ["2026-11-27T00:00:00Z"]}, {"NS": ["1700000000"]}, {"B": b"2026-11-27"},
    {"N": "1700000000"}, {"N": "1700000000000"}, {"N": "1700000000.5"}, {"N": "-1"},
    {"N": "1E+30"}, {"N": "99999999999"}, {"N": "100000000000"}, {"N": "-100000000000"},
    {"N": "0"}, {"N": "nan"}, {"N": "inf"}, {"N": "abc"},
]


def created_values(seed: int = 20261127, n: int = 6000) -> list[dict[str, Any] | None]:
    """Attribute values a created time may hold: explicit cases and generated ones."""
    rng = random.Random(seed)
    out: list[dict[str, Any] | None] = [{"S": s} for s in EXPLICIT_STRINGS]
    out += [{"N": s} for s in EXPLICIT_STRINGS]
    out += OTHER_VALUES
    for _ in range(n):
        roll = rng.random()
        if roll < 0.55:
            text = _iso(rng, rng.uniform(-2_000_000_000, 4_000_000_000))
        elif roll < 0.75:
            text = _number_text(rng)
        else:
            text = _mangle(rng, _iso(rng, rng.uniform(0, 4_000_000_000)) if rng.random() < 0.8
                           else _number_text(rng))
        if rng.random() < 0.25:
            before, after = rng.choice(WRAPS)
            text = before + text + after
        out.append({"N": text} if rng.random() < 0.1 else {"S": text})
    return out


def _outcome(fn: Callable[[Any], float | None], av: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(av))
    except Exception as exc:  # the same exception type counts as the same result
        return ("raised", type(exc).__name__)


@pytest.mark.usefixtures("non_utc_local_zone")
def test_created_time_equals_parse_timestamp() -> None:
    values = created_values()
    readable = unreadable = inline = 0
    for av in values:
        got, want = _outcome(created_time, av), _outcome(parse_timestamp, av)
        assert got == want, f"created_time({av!r}) = {got}, parse_timestamp gives {want}"
        kind, value = got
        assert kind == "ok", f"{av!r}: {value}"
        if value is None:
            unreadable += 1
            continue
        assert isinstance(value, float) and math.isfinite(value), av
        readable += 1
        s = av.get("S") if av else None
        if isinstance(s, str) and s == s.strip() and s[4:5] == "-":
            inline += 1  # the inlined ISO case, not the general path
    # The generated set is not degenerate: both outcomes, and many inlined ISO reads.
    assert readable > 1000 and unreadable > 1000 and inline > 1500, (
        readable, unreadable, inline)


def test_created_time_reads_naive_and_offset_times_as_utc(non_utc_local_zone: None) -> None:
    t = datetime(2026, 11, 27, tzinfo=UTC).timestamp()
    for text in ("2026-11-27T00:00:00", "2026-11-27T00:00:00Z", "2026-11-27T05:30:00+05:30",
                 "2026-11-26T16:00:00-0800", "2026-11-27", "20261127T000000Z"):
        assert created_time({"S": text}) == t == parse_timestamp({"S": text}), text


# --------------------------------------------------------------------------- records


SETTINGS = [
    Settings(backoff=Backoff(base=10.0, factor=2.0, jitter=0.2, cap=3600.0), max_attempts=4,
             stuck_after=300.0),
    Settings(created_attr="ts", error_attr="err", attempts_attr="n", last_attempt_attr="tried",
             refired_attr="fired", refire_count_attr="fires", stuck_after=60.0,
             backoff=Backoff(base=30.0, factor=3.0, jitter=0.5, cap=600.0), max_attempts=3),
]
INFOS = [TableInfo("outbox", KeyAttr("id", "S")),
         TableInfo("outbox", KeyAttr("pk", "N"), KeyAttr("sk", "S"))]

ERRORS: list[dict[str, Any] | None] = [
    None, None, None, {"NULL": True}, {"S": ""}, {"S": "429 Too Many Requests"}, {"S": " "},
    {"N": "500"}, {"N": "0"}, {"M": {"code": {"N": "1"}, "why": {"S": "x"}}}, {"M": {}},
    {"BOOL": False}, {"L": []}, {"SS": ["a"]}, {"B": b"\x00"},
]
ATTEMPTS: list[dict[str, Any] | None] = [
    None, {"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}, {"N": "4"}, {"N": "9"},
    {"N": "2.5"}, {"N": "-1"}, {"S": "2"}, {"NULL": True}, {"N": "1E+2"},
]
AGES = [0.0, 1.0, 59.0, 59.999, 60.0, 60.001, 61.0, 299.0, 299.999, 300.0, 300.001, 301.0,
        3600.0, 86400.0, 1e6, -50.0, -0.001]


def _when(rng: random.Random, ts: float) -> dict[str, Any]:
    """``ts`` as a created/last-attempt/refire attribute value, in one of its forms."""
    form = rng.randrange(9)
    dt = datetime.fromtimestamp(ts, tz=UTC)
    if form == 0:
        return {"S": dt.isoformat().replace("+00:00", "Z")}
    if form == 1:
        return {"S": dt.isoformat()}
    if form == 2:
        return {"S": dt.replace(tzinfo=None).isoformat()}  # naive: UTC
    if form == 3:
        zone = timezone(timedelta(hours=rng.choice([5.5, -8, 1, 14, -12])))
        return {"S": dt.astimezone(zone).isoformat()}
    if form == 4:
        return {"N": repr(ts) if rng.random() < 0.5 else str(int(ts))}
    if form == 5:
        return {"N": str(round(ts * 1000))}  # epoch ms
    if form == 6:
        return {"S": repr(ts)}
    if form == 7:
        before, after = rng.choice(WRAPS)
        return {"S": before + dt.isoformat() + after}
    return {"S": dt.strftime("%Y%m%dT%H%M%S") + "Z"}


def make_items(settings: Settings, info: TableInfo, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    odd = [av for av in created_values(seed, 400) if av]
    items: list[dict[str, Any]] = []
    for i in range(n):
        item: dict[str, Any] = {info.hash_key.name: {info.hash_key.type: str(i)}}
        if info.range_key is not None:
            item[info.range_key.name] = {info.range_key.type: f"r{i % 5}"}
        item["payload"] = {"S": f"body {i}"}
        err = rng.choice(ERRORS)
        if err is not None:
            item[settings.error_attr] = err
        roll = rng.random()
        if roll < 0.1:
            pass  # no created time: unknown age
        elif roll < 0.25:
            item[settings.created_attr] = rng.choice(odd)  # any form, readable or not
        else:
            age = rng.choice([*AGES, settings.stuck_after, settings.stuck_after,
                              rng.uniform(0, 2 * settings.stuck_after)])
            item[settings.created_attr] = _when(rng, NOW - age)
        attempts = rng.choice(ATTEMPTS)
        if attempts is not None:
            item[settings.attempts_attr] = attempts
        if rng.random() < 0.6:
            item[settings.last_attempt_attr] = (
                _when(rng, NOW - rng.choice([0, 5, 15, 45, 100, 400, 5000]))
                if rng.random() < 0.9 else {"S": "not a time"})
        if rng.random() < 0.3:
            item[settings.refired_attr] = _when(rng, NOW - rng.choice([0, 10, 100, 400, 9000]))
        if rng.random() < 0.3:
            item[settings.refire_count_attr] = {"N": str(rng.randint(0, 3))}
        items.append(item)
    return items


def _pages(items: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    pages, start = [[]], 0  # an empty page too
    while start < len(items):
        size = rng.randint(1, 250)
        pages.append(items[start:start + size])
        start += size
    return pages


def _fields(rec: Record) -> tuple[Any, ...]:
    return tuple(getattr(rec, f.name) for f in fields(Record))


SUBSETS = [frozenset(c) for r in range(1, len(SELECTABLE) + 1)
           for c in itertools.combinations(SELECTABLE, r)]


@pytest.mark.usefixtures("non_utc_local_zone")
@pytest.mark.parametrize("case", [0, 1], ids=["default-attrs", "renamed-attrs-composite"])
@pytest.mark.parametrize("retry", [True, False], ids=["retry", "no-retry"])
def test_selected_equals_classify_then_filter(case: int, retry: bool) -> None:
    assert len(SUBSETS) == 63 and set(SELECTABLE) == {
        "failed", "stuck", "pending", "due", "waiting", "dead"}
    settings, info = SETTINGS[case], INFOS[case]
    items = make_items(settings, info, 1500, seed=1000 + case)
    rng = random.Random(7 + case)
    pages = _pages(items, rng)
    c = Classifier(settings, info, NOW, retry=retry)
    # classify is pure for a fixed now: each page's records, classified once
    classified = [list(map(c.classify, page)) for page in pages]
    seen_status = {r.status for page in classified for r in page}
    seen_retry = {r.retry for page in classified for r in page}
    assert seen_status == {"failed", "stuck", "pending"}
    assert seen_retry == ({None, "due", "waiting", "dead"} if retry else {None})
    assert any(r.age_seconds == settings.stuck_after and r.status == "stuck"
               for page in classified for r in page)  # exactly at stuck-after
    total = 0
    for wanted in SUBSETS:
        for page, records in zip(pages, classified, strict=True):
            want = [r for r in records if r.selected_by(wanted)]
            got = c.selected(iter(page), set(wanted) if len(wanted) % 2 else wanted)
            assert [_fields(r) for r in got] == [_fields(r) for r in want], (
                sorted(wanted), [r.key for r in got], [r.key for r in want])
            assert all(g.item is w.item for g, w in zip(got, want, strict=True))
            total += len(got)
    assert total > 10_000  # the selections select


@pytest.mark.usefixtures("non_utc_local_zone")
def test_selected_at_the_stuck_after_boundary() -> None:
    """Exactly stuck-after old is stuck, a microsecond younger is pending, in every form."""
    s = SETTINGS[0]
    info = INFOS[0]
    c = Classifier(s, info, NOW)
    rng = random.Random(3)
    items = []
    ages = (300.0, 299.0, 301.0, 299.999999, 300.000001)  # whole seconds: exact in any form
    for i in range(200):
        age = ages[i % 5]
        items.append({"id": {"S": str(i)}, "created_at": _when(rng, NOW - age)})
    for wanted in ({"stuck"}, {"pending"}, {"stuck", "pending"}):
        got = c.selected(items, wanted)
        want = [r for r in map(c.classify, items) if r.selected_by(wanted)]
        assert [_fields(r) for r in got] == [_fields(r) for r in want]
    # 300 s and 301 s old: stuck; 299 s: pending (every form a created time was read from;
    # Python 3.10 reads fewer ISO forms, and an unreadable one is stuck, of unknown age)
    status = {r.key["id"]["S"]: r.status for r in c.selected(items, {"stuck", "pending"})}
    read = [(i % 5, status[str(i)]) for i, it in enumerate(items)
            if i % 5 < 3 and c.classify(it).created_at is not None]
    assert all(st == ("pending" if k == 1 else "stuck") for k, st in read)
    assert all(sum(k == j for k, _ in read) >= 20 for j in range(3))


# --------------------------------------------------------------------------- select()


def _world(now: float) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Failed (due, waiting, dead), stuck and pending items, ~6 KB each (a Scan page is
    at most 1 MB: several pages). Returns the items and their ids by status."""
    def at(ago: float) -> dict[str, str]:
        return {"S": datetime.fromtimestamp(now - ago, tz=UTC).isoformat().replace(
            "+00:00", "Z")}

    items: list[dict[str, Any]] = []
    truth: dict[str, set[str]] = {k: set() for k in (
        "failed", "stuck", "pending", "due", "waiting", "dead")}
    pad = {"S": "x" * 6000}
    for i in range(300):
        key = f"m{i:04d}"
        kind = i % 6
        item: dict[str, Any] = {"id": {"S": key}, "pad": pad}
        if kind == 0:  # failed, first attempt an hour ago: due
            item.update(created_at=at(3600), last_error={"S": "429"}, attempts={"N": "1"},
                        last_attempt_at=at(3600))
            truth["failed"].add(key)
            truth["due"].add(key)
        elif kind == 1:  # failed 10 s ago after 3 attempts: waiting
            item.update(created_at={"N": str(int((now - 7200) * 1000))},
                        last_error={"M": {"code": {"N": "500"}}}, attempts={"N": "3"},
                        last_attempt_at={"N": str(now - 10)})
            truth["failed"].add(key)
            truth["waiting"].add(key)
        elif kind == 2:  # failed at max attempts: dead
            item.update(created_at=at(600), last_error={"S": "boom"}, attempts={"N": "8"})
            truth["failed"].add(key)
            truth["dead"].add(key)
        elif kind == 3:  # stuck: 10 min old, or of unknown age, or an empty error
            variant = (i // 6) % 4
            item["created_at"] = {"S": "garbage"} if variant == 2 else at(600)
            if variant == 1:
                item["last_error"] = {"NULL": True}
            elif variant == 3:
                item["last_error"] = {"S": ""}
            truth["stuck"].add(key)
        else:  # pending: 10 s old
            item["created_at"] = at(10) if kind == 4 else {"N": str(int(now - 10))}
            if i % 12 == 5:
                item["last_error"] = {"S": ""}
            truth["pending"].add(key)
        items.append(item)
    return items, truth


@pytest.mark.parametrize(("statuses", "older_than", "keys_only", "segments"), [
    (DEFAULT_STATUSES, None, False, 1),
    (("due",), None, False, 1),
    (("due",), None, True, 2),
    (("failed", "stuck", "pending"), 300.0, False, 3),
], ids=["default", "due", "due-keys-only-2-segments", "all-older-than-3-segments"])
def test_select_fast_path_equals_observed_path(endpoint: str, ddb: Any, statuses: tuple[
        str, ...], older_than: float | None, keys_only: bool, segments: int) -> None:
    from streamq.aws import Aws

    now = time.time()
    items, truth = _world(now)
    create_table(ddb, "outbox")
    batch_put(ddb, "outbox", items)
    settings = Settings(table="outbox", endpoint_url=endpoint, region="us-east-1")
    aws = Aws(settings)
    info = describe_table(aws, "outbox")

    pages: list[int] = []
    fast = list(select(aws, info, settings, Selection(
        statuses=statuses, older_than=older_than, keys_only=keys_only, segments=segments),
        now=now, on_page=pages.append))
    assert len(pages) >= 2  # several Scan pages
    observed: list[Record] = []
    old = list(select(aws, info, settings, Selection(
        statuses=statuses, older_than=older_than, keys_only=keys_only, segments=segments,
        observe=observed.append), now=now))

    def by_key(records: list[Record]) -> dict[str, tuple[Any, ...]]:
        out = {key_id(r.key): _fields(r) for r in records}
        assert len(out) == len(records)  # no record twice
        return out

    assert by_key(fast) == by_key(old)
    # the observer saw every item the scan read, once: the whole table, or for a selection
    # of failed records only, the items the server-side filter lets through (an error
    # attribute present and not the empty string)
    read = [it for it in items if not set(statuses) <= {"failed", "due", "waiting", "dead"}
            or it.get("last_error", {"S": ""}) != {"S": ""}]
    assert len(observed) == len(read) and len(read) > len(truth["failed"])
    assert {r.key["id"]["S"] for r in observed} == {it["id"]["S"] for it in read}
    # and the selection is the right one, not merely the same on both paths
    want = set().union(*(truth[s] for s in statuses))
    if older_than is not None:
        want -= truth["pending"]  # 10 s old
    assert {r.key["id"]["S"] for r in fast} == want and want
    assert {r.key["id"]["S"]: r.status for r in fast} == {
        r.key["id"]["S"]: r.status for r in old}
